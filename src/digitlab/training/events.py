"""Typed training events. Each serialises to `{type, ...}`, the wire format of the app's WebSocket."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

#: Batch events leave the trainer at most this often (each epoch's last batch always does): fifty a
#: second, the page's chart points. Each one costs every subscribed browser a network message and a
#: task on its page, and the history a row; 20 a second measured no different on the page
#: (bench/ui_frames.py), so the curves keep their detail.
BATCH_EVENT_INTERVAL = 1 / 50


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


class BatchThrottle:
    """`throttle(event)` is False for a batch end that comes sooner than `interval` seconds after the
    last one let through, except an epoch's last batch; True for every other event."""

    def __init__(self, interval: float = BATCH_EVENT_INTERVAL):
        self.interval = interval
        self.last = float("-inf")

    def __call__(self, event: Event) -> bool:
        if isinstance(event, BatchEnd) and event.batch != event.batches:
            now = time.monotonic()
            if now - self.last < self.interval:
                return False
            self.last = now
        return True
