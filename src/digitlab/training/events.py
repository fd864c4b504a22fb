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
