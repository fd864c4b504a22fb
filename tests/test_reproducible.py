"""Same seed, same model: bit-identical weight files on CPU, and every record says what made it."""

from __future__ import annotations

import hashlib
import json

import pytest

from digitlab.job import train_model
from digitlab.models import ModelStore
from digitlab.training import TrainConfig, kernels


def _weights_digest(home) -> str:
    store = ModelStore(home)
    return hashlib.sha256(store.file_path("m", "weights").read_bytes()).hexdigest()


def _train(home, seed: int, threads: int):
    return train_model(home, "sample", TrainConfig(epochs=2, seed=seed, threads=threads, batch_size=256), name="m")


@pytest.mark.parametrize("threads, fused", [(1, True), (2, True), (1, False), (2, False)])
def test_same_seed_gives_identical_weight_files(tmp_path, monkeypatch, threads, fused):
    if not fused:
        monkeypatch.setattr(kernels, "LIB", None)
    elif kernels.LIB is None:
        pytest.fail("the fused kernels did not build (see DEVELOPERS.md)")
    a = _train(tmp_path / "a", 7, threads)
    b = _train(tmp_path / "b", 7, threads)
    assert a.record["provenance"]["path"] == ("fused-kernels" if fused else "pytorch-ops")
    assert _weights_digest(tmp_path / "a") == _weights_digest(tmp_path / "b")
    assert [e.val_loss for e in a.fit.history] == [e.val_loss for e in b.fit.history]
    _train(tmp_path / "c", 8, threads)
    assert _weights_digest(tmp_path / "c") != _weights_digest(tmp_path / "a")


def test_the_record_says_what_made_the_model(tmp_path):
    import numpy
    import torch

    import digitlab
    result = train_model(tmp_path, "sample", TrainConfig(epochs=1, seed=5, threads=1), name="m")
    rec = ModelStore(tmp_path).record("m")
    prov = rec["provenance"]
    assert prov == result.record["provenance"]
    assert prov["config"]["seed"] == 5 and prov["config"]["threads"] == 1 and rec["config"] == prov["config"]
    assert prov["path"] in ("fused-kernels", "pytorch-ops") and prov["device"] == "cpu" and prov["cpu"]
    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["numpy"] == numpy.__version__
    assert prov["versions"]["digitlab"] == digitlab.__version__
    assert prov["dataset"]["name"] == "sample" and len(prov["dataset"]["sha256"]) == 64
    assert prov["dataset"]["train"] == 8000
    json.dumps(rec)  # all of it is plain JSON


def test_threads_zero_records_the_cores_used(tmp_path):
    from digitlab.training.loop import cpu_cores
    result = train_model(tmp_path, "sample", TrainConfig(epochs=1, seed=1, threads=0), name="m")
    assert result.record["config"]["threads"] == cpu_cores()


def test_dataset_hash_follows_content():
    from dataclasses import replace

    from digitlab.data import load_dataset
    ds = load_dataset("sample")
    same = load_dataset("sample")
    assert ds.content_hash == same.content_hash
    changed = ds.train_labels.copy()
    changed[0] = (changed[0] + 1) % 10
    assert replace(ds, train_labels=changed).content_hash != ds.content_hash
