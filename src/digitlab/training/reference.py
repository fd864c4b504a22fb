"""The plain PyTorch loop: the readable reference that fit() must match, and the speed baseline.

Same data order, augmentation, optimiser and schedule as fit() for a given seed, but the model
as written, default threads and memory layout, and one loss.backward() per batch. Tests check
that fit() follows its loss curve; bench/train_speed.py times both.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from . import augment
from .config import TrainConfig
from .loop import as_tensors, evaluate


def plain_fit(model: nn.Module, dataset, config: TrainConfig) -> list[dict]:
    """Train like the PyTorch MNIST example; returns per-epoch {loss, val_loss, val_accuracy, seconds}."""
    from dataclasses import replace

    from ..data.datasets import is_digits, with_printed

    config.validate(len(dataset.train_labels))
    if not is_digits(dataset):
        config = replace(config, distort=0.0)
    dataset = with_printed(dataset, config.printed)
    gen = torch.Generator().manual_seed(config.seed)
    x, y = as_tensors(dataset.train_images, dataset.train_labels, "cpu")
    xt, yt = as_tensors(dataset.test_images, dataset.test_labels, "cpu")
    n, bs = len(x), config.batch_size
    batches = math.ceil(n / bs)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.learning_rate, total_steps=config.epochs * batches, pct_start=0.2)
    history = []
    model.train()
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        draws = augment.draw(n, config.augment, config.distort, gen) if config.augment or config.distort else None
        loss_sum = 0.0
        for b in range(batches):
            idx = perm[b * bs:(b + 1) * bs]
            xb = x[idx].float() / 255
            if draws is not None:  # the same draws as fit(), made the same way
                xb = augment.apply(xb, draws.part(b * bs, b * bs + len(idx), "cpu"))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
        seconds = time.perf_counter() - start
        val_loss, val_acc = evaluate(model, xt, yt)
        history.append({"epoch": epoch, "loss": loss_sum / n, "val_loss": val_loss, "val_accuracy": val_acc,
                        "seconds": seconds})
    return history
