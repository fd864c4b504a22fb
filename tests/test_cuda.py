"""On a CUDA machine: the dataset lives on the GPU while training, and CPU and CUDA from the same
seed reach the same accuracy (within 0.5 points) on close loss curves. Skipped without CUDA;
bench/gpu.py measures more (speed, Fashion-MNIST)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from digitlab.data import load_dataset
from digitlab.models import build
from digitlab.training import EpochEnd, TrainConfig, fit, loop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def _train(device: str, monkeypatch) -> tuple[list[EpochEnd], list[torch.device]]:
    ds = load_dataset("sample")
    ds = replace(ds, train_images=ds.train_images[:4000], train_labels=ds.train_labels[:4000])
    devices = []
    original = loop.as_tensors

    def watched(images, labels, dev):
        x, y = original(images, labels, dev)
        devices.extend([x.device, y.device])
        return x, y

    monkeypatch.setattr(loop, "as_tensors", watched)
    history = []
    torch.manual_seed(0)
    fit(build("blog-cnn"), ds, TrainConfig(epochs=3, batch_size=128, seed=0, device=device),
        callbacks=[lambda e: history.append(e) if isinstance(e, EpochEnd) else None])
    return history, devices


def test_cuda_keeps_the_dataset_on_the_device_and_agrees_with_the_cpu(monkeypatch):
    gpu, devices = _train("cuda", monkeypatch)
    assert devices and all(d.type == "cuda" for d in devices)  # train and test splits, images and labels
    cpu, _ = _train("cpu", monkeypatch)
    assert abs(gpu[-1].val_accuracy - cpu[-1].val_accuracy) <= 0.005
    for g, c in zip(gpu, cpu):
        assert g.loss == pytest.approx(c.loss, rel=0.05) and g.val_loss == pytest.approx(c.val_loss, rel=0.05)
