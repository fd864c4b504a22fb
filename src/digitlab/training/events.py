"""Typed training events. Each serialises to `{type, ...}`, the wire format of the app's WebSocket."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Event:
    type: str = field(init=False, default="")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunStarted(Event):
    epochs: int
    batches: int  # per epoch
    train_size: int
    test_size: int
    device: str
    path: str = ""  # how it trains: "fused-kernels", "pytorch-ops" (CPU), "cuda" or "mps"
    threads: int = 1  # batch shards (one per core) on CPU
    provenance: dict = field(default_factory=dict)  # filled in by the job: see digitlab.provenance
    processes: int = 1  # training processes (torchrun ranks, all machines together), each with `threads` shards
    type: str = field(init=False, default="run.started")


@dataclass
class BatchEnd(Event):
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int
    loss: float
    accuracy: float
    images_per_s: float
    elapsed: float
    type: str = field(init=False, default="batch.end")


@dataclass
class EpochEnd(Event):
    epoch: int
    epochs: int
    loss: float  # mean over the epoch's batches
    accuracy: float
    val_loss: float
    val_accuracy: float
    images_per_s: float
    elapsed: float
    epoch_seconds: float
    type: str = field(init=False, default="epoch.end")


@dataclass
class RunFinished(Event):
    epochs_done: int
    test_accuracy: float | None
    test_loss: float | None
    seconds: float
    model: str | None = None
    type: str = field(init=False, default="run.finished")


@dataclass
class RunCancelled(Event):
    epochs_done: int
    test_accuracy: float | None
    test_loss: float | None
    seconds: float
    model: str | None = None  # None when cancelled before the first epoch was saved
    type: str = field(init=False, default="run.cancelled")


@dataclass
class RunFailed(Event):
    error: str  # one line
    model: str | None = None
    type: str = field(init=False, default="run.failed")


END_EVENTS = frozenset({"run.finished", "run.failed", "run.cancelled"})
