import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """A home folder with one model trained on the embedded sample (8 epochs, ~97%)."""
    from digitlab.job import train_model
    from digitlab.training import TrainConfig

    home = tmp_path_factory.mktemp("home")
    result = train_model(home, "sample", TrainConfig(epochs=8, seed=1), name="base")
    assert result.name == "base"
    return home


@pytest.fixture(scope="session")
def default_home(tmp_path_factory):
    """A home folder with one model made exactly as a plain `digitlab train` makes it (the default
    recipe, seed 0): what users draw with, judged on the drawn-digit benchmark."""
    from digitlab.job import train_model
    from digitlab.training import TrainConfig

    home = tmp_path_factory.mktemp("default-home")
    result = train_model(home, "sample", TrainConfig(), name="default")
    assert result.name == "default"
    return home
