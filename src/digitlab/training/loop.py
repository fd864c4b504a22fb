"""The training loop: in-memory uint8 tensors, Adam with a one-cycle schedule, events, cancel.

The whole dataset lives on the device as one uint8 tensor; each batch is a single gather plus a
scale to [0, 1], then every image gets its own random warp (augment.py: shift, rotation, scale,
shear, stroke width), on the shard's thread. Validation on the
test split runs after every epoch under inference_mode.

Speed on CPU (bench/train_speed.py, 2 cores): training runs on a "training view" of the model
with the same parameters: each conv -> ReLU -> max-pool block on fused C kernels (kernels.c,
about 10x PyTorch's oneDNN path for these 1-16 channel convolutions), or, without them, PyTorch
ops with the ReLU moved after the pool (they commute; it then touches 4x fewer values) in
channels_last. Each batch is split into one shard per core, each shard's forward/backward
running single-threaded on its own Python thread (the GIL is released inside the kernels and
torch ops), their gradients summed before one fused Adam step. Same math as the plain loop.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import augment, kernels
from .config import ConfigError, TrainConfig, draw_seed  # noqa: F401 - re-exported
from .events import BatchEnd, EpochEnd, Event, RunStarted

Callback = Callable[[Event], None]


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class FitResult:
    history: list[EpochEnd]
    cancelled: bool
    seconds: float
    device: str
    path: str = ""  # see RunStarted.path
    threads: int = 1

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps requested but Metal is not available")
    return torch.device(name)


def _is_pool2(m: nn.Module) -> bool:
    return (isinstance(m, nn.MaxPool2d) and m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2))
            and m.padding in (0, (0, 0)) and m.dilation in (1, (1, 1)) and not m.ceil_mode)


def fused_view(model: nn.Module) -> nn.Module | None:
    """The model with every Conv2d -> ReLU -> MaxPool2d(2) run by the fused C kernels, or None.

    Only when the compiled kernels are there and every convolution fits them; activations flow
    NHWC between the fused blocks and go back to NCHW before the first non-convolutional layer.
    """
    from . import kernels

    if not isinstance(model, nn.Sequential) or kernels.LIB is None:
        return None
    layers, out, i = list(model.children()), [kernels.ToNHWC()], 0
    while i + 2 < len(layers) and isinstance(layers[i], nn.Conv2d):
        conv, relu, pool = layers[i:i + 3]
        if not (kernels.available(conv) and isinstance(relu, nn.ReLU) and _is_pool2(pool)):
            return None
        out.append(kernels.ConvPoolReLU(conv))
        i += 3
    if i == 0 or any(isinstance(m, nn.Conv2d) for m in layers[i:]):
        return None
    return nn.Sequential(*out, kernels.ToNCHW(), *layers[i:])


def training_path(model: nn.Module, device: torch.device) -> tuple[str, nn.Module]:
    """The one place that decides how a model trains, and the module that does it.

    On CPU: "fused-kernels" when the compiled kernels fit every conv block, else "pytorch-ops"
    (the same math in PyTorch's operators); on a GPU the model itself, "cuda" or "mps".
    """
    if device.type != "cpu":
        return device.type, model
    view = training_view(model)
    fused = any(isinstance(m, kernels.ConvPoolReLU) for m in view.modules())
    return ("fused-kernels" if fused else "pytorch-ops"), view


def training_view(model: nn.Module) -> nn.Module:
    """The model rearranged for CPU speed, with the same parameters, outputs and gradients.

    The fused kernels when they apply (fused_view); otherwise each ReLU -> MaxPool2d pair is
    swapped: max(relu(a), relu(b)) == relu(max(a, b)), so pooling first lets the ReLU and its
    backward work on a quarter of the values.
    """
    fused = fused_view(model)
    if fused is not None:
        return fused
    if not isinstance(model, nn.Sequential):
        return model
    layers = list(model.children())
    i = 0
    while i < len(layers) - 1:
        if isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            i += 2
        else:
            i += 1
    return nn.Sequential(*layers)


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class ShardedStep:
    """Forward + backward of one batch split into shards, one per thread; gradients summed.

    Each shard's loss is weighted by its share of the batch, so the summed gradient equals the
    whole batch's mean-loss gradient.
    """

    def __init__(self, view: nn.Module, params: list[torch.Tensor], shards: int, group=None):
        self.view, self.params, self.shards = view, params, shards
        self.pool = ThreadPoolExecutor(shards - 1, thread_name_prefix="fit-shard") if shards > 1 else None
        self.group = group  # a distributed.Group: this process does its slice of each batch (torchrun)
        self.stop = False  # distributed: some process asked to stop at this batch (all stop together)

    def _shard(self, load, part, start, y, weight):
        xb, yb = load(part, start), y.index_select(0, part)
        logits = self.view(xb)
        loss = F.cross_entropy(logits, yb) * weight
        grads = torch.autograd.grad(loss, self.params)
        return loss.detach(), (logits.argmax(1) == yb).sum(), grads

    def __call__(self, idx: torch.Tensor, load, y: torch.Tensor, stop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Set each parameter's .grad for the batch of examples `idx`; returns (mean loss, number correct).

        `load(indices, start)` gathers (and augments) a shard's images, on the shard's own thread;
        `start` is the shard's position in the batch. In a distributed run `idx` is the global
        batch: this process does its slice, and the sums come from every process (`stop`: this
        process wants to stop; `self.stop` says whether any does).
        """
        n = len(idx)
        mine, offset = idx, 0
        if self.group is not None:
            slices = torch.tensor_split(idx, self.group.world)
            mine, offset = slices[self.group.rank], sum(len(s) for s in slices[:self.group.rank])
        parts = [p for p in torch.tensor_split(mine, self.shards) if len(p)]
        starts = [offset + sum(len(p) for p in parts[:i]) for i in range(len(parts))]
        futures = [self.pool.submit(self._shard, load, p, s, y, len(p) / n)
                   for p, s in zip(parts[1:], starts[1:])] if self.pool else []
        results = ([self._shard(load, parts[0], starts[0], y, len(parts[0]) / n)] if parts else []) \
            + [f.result() for f in futures]
        grads = []
        for i, p in enumerate(self.params):
            grad = results[0][2][i] if results else torch.zeros_like(p)  # a slice of nothing adds nothing
            for r in results[1:]:
                grad = grad + r[2][i]
            grads.append(grad)
        loss = sum(r[0] for r in results) if results else torch.zeros((), device=y.device)
        correct = sum(r[1] for r in results) if results else torch.zeros((), dtype=torch.long, device=y.device)
        if self.group is not None:  # one all-reduce: gradients, loss, correct count, stop flag
            loss, correct, self.stop = self.group.reduce_step(grads, loss, correct, stop)
        for p, grad in zip(self.params, grads):
            if grad.stride() != p.stride():  # fused Adam walks both as flat memory
                grad = torch.empty_like(p).copy_(grad)
            p.grad = grad
        return loss, correct

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


def as_tensors(images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> uint8 (N, 1, 28, 28) on `device`; labels -> int64."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1).to(device)  # a writable copy
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return x, y


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 2500, group=None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on uint8 images `x`, in large batches (in a
    distributed run each process scores its share of the chunks and the sums are all-reduced)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    starts = range(0, len(x), chunk) if group is None else group.evaluation_share(len(x), chunk)
    for i in starts:
        logits = model(x[i:i + chunk].float().div_(255))
        loss_sum += F.cross_entropy(logits, y[i:i + chunk], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + chunk]).sum().item()
    model.train(was_training)
    if group is not None:
        sums = group.all_reduce(torch.tensor([loss_sum, float(correct)], dtype=torch.float64, device=group.device))
        loss_sum, correct = sums[0].item(), round(sums[1].item())
    return loss_sum / len(x), correct / len(x)


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int):
    """The one-cycle schedule (20% warm-up); a constant rate for runs too short to have phases
    (OneCycleLR divides by zero below 4 steps, e.g. one epoch of one or two batches)."""
    if total_steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps,
                                               pct_start=max(0.2, 2 / total_steps))


def fit(model: nn.Module, dataset, config: TrainConfig | None = None,
        callbacks: Iterable[Callback] = (), cancel: CancelToken | None = None, group=None) -> FitResult:
    """Train `model` on `dataset` (a digitlab.data.Dataset) in place.

    Events go to every callback. `cancel.is_set()` is checked before every batch; on cancel the
    model is put back to its state at the end of the last finished epoch. `group`: this process's
    distributed.Group in a torchrun run (each process does its slice of every batch; a cancel in
    any one stops all of them at the same batch).
    """
    from ..data.datasets import is_digits, with_printed

    config = (config or TrainConfig()).validate(len(dataset.train_labels))
    if not is_digits(dataset):  # the handwriting recipe is for handwriting (see TrainConfig.distort)
        config = replace(config, distort=0.0)
    dataset = with_printed(dataset, config.printed)
    device = pick_device(config.device)
    if group is not None and device.type == "cuda":
        device = group.device  # this rank's own GPU
    # more shards than cores only slows every step down (256 on 2 cores: 50x); the CLI warns.
    # Processes on one machine share its cores: by default each takes its share.
    share = max(1, cpu_cores() // (group.local_world if group is not None else 1))
    shards = 1 if device.type != "cpu" else min(config.threads or share, cpu_cores())
    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # parallelism comes from the shards, and no OpenMP pool spins
    step = None
    try:
        torch.manual_seed(config.seed)
        model.to(device).train()
        if group is not None:
            group.start_run(model, dataset, config)
        path, view = training_path(model, device)
        if path != "fused-kernels":
            model.to(memory_format=torch.channels_last)  # faster pooling in PyTorch's own ops
        step = ShardedStep(view, list(model.parameters()), shards, group)
        return _fit(model, step, dataset, config, device, list(callbacks), cancel, path)
    finally:
        if step is not None:
            step.close()
        model.to(memory_format=torch.contiguous_format)
        torch.set_num_threads(threads_before)


def _fit(model, step, dataset, config, device, callbacks, cancel, path) -> FitResult:
    gen = torch.Generator().manual_seed(config.seed)
    x, y = as_tensors(dataset.train_images, dataset.train_labels, device)
    xt, yt = as_tensors(dataset.test_images, dataset.test_labels, device)
    n, bs = len(x), config.batch_size
    batches = math.ceil(n / bs)
    augmenting = bool(config.augment or config.distort)
    fused_augment = augmenting and device.type == "cpu" and kernels.LIB is not None
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, **fused)
    sched = one_cycle(opt, config.learning_rate, config.epochs * batches)

    def emit(event: Event) -> None:
        for cb in callbacks:
            cb(event)

    group = step.group
    emit(RunStarted(config.epochs, batches, n, len(xt), str(device), path, step.shards,
                    processes=group.world if group is not None else 1))
    history: list[EpochEnd] = []
    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        # the epoch's transforms in one draw (small tensor ops cost more in calls than in maths)
        epoch_draws = augment.draw(n, config.augment, config.distort, gen) if augmenting else None
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for b in range(batches):
            if cancel is not None and cancel.is_set() and group is None:  # distributed: decided together below
                model.load_state_dict(last_good)
                return FitResult(history, True, time.perf_counter() - start, str(device), path, step.shards)
            idx = perm[b * bs:(b + 1) * bs]

            def load(part, start, first=b * bs):
                if epoch_draws is None:
                    return x.index_select(0, part).float().div_(255)
                mine = epoch_draws.part(first + start, first + start + len(part), device)
                if fused_augment:  # gather + warp + stroke in one C pass: 5-10x fewer cycles than torch ops
                    return kernels.augment_gather(x, part, mine.theta, mine.stroke)
                return augment.apply(x.index_select(0, part).float().div_(255), mine)
            loss, batch_correct = step(idx, load, y, stop=cancel is not None and cancel.is_set())
            if step.stop:  # some process was cancelled: every process stops at this same batch
                model.load_state_dict(last_good)
                return FitResult(history, True, time.perf_counter() - start, str(device), path, step.shards)
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += batch_correct
            if callbacks:
                now = time.perf_counter()
                seen = min((b + 1) * bs, n)
                emit(BatchEnd(epoch, b + 1, batches, loss.item(), batch_correct.item() / len(idx),
                              seen / max(now - epoch_start, 1e-9), now - start))
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the epoch's kernels are queued, not necessarily done
        epoch_seconds = time.perf_counter() - epoch_start
        val_loss, val_acc = evaluate(step.view, xt, yt, group=group)
        event = EpochEnd(epoch, config.epochs, loss_sum.item() / n, correct.item() / n, val_loss, val_acc,
                         n / epoch_seconds, time.perf_counter() - start, epoch_seconds)
        history.append(event)
        last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        emit(event)
    return FitResult(history, False, time.perf_counter() - start, str(device), path, step.shards)
