"""What made a model: versions, CPU, dataset identity. Stored in every model and run record."""

from __future__ import annotations

import platform
from functools import lru_cache

from . import __version__
from .data.datasets import is_digits


@lru_cache(maxsize=1)
def versions() -> dict:
    """The versions that decide a run's numbers: digitlab, torch, numpy, Python."""
    import numpy
    import torch

    return {"digitlab": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") or line.startswith("Model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_run(config: dict, dataset, path: str, threads: int, device: str) -> dict:
    """A run's full recipe: the config as used (the real thread count), how it trained, on what."""
    return {
        "config": {**config, "threads": threads},
        "path": path,
        "device": device,
        "cpu": cpu_name(),
        "versions": versions(),
        "dataset": {"name": dataset.name, "spec": dataset.spec, "sha256": dataset.content_hash,
                    "train": int(len(dataset.train_labels)), "test": int(len(dataset.test_labels))},
        "handwriting_recipe": is_digits(dataset),  # distortions and printed digits applied (digits 0-9 only)
    }
