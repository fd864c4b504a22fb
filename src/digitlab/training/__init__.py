"""Training: the fit loop, its typed events, hyperparameters and cancel. Knows nothing of the web.

`config` and `events` need no torch; the fit loop (and torch) is imported on first use, so the
server can validate a config and read events without loading torch.
"""

from .config import ConfigError, TrainConfig, draw_seed
from .events import BatchEnd, EpochEnd, Event, RunCancelled, RunFailed, RunFinished, RunStarted

_FIT = ("CancelToken", "FitResult", "evaluate", "fit", "pick_device")

__all__ = ["BatchEnd", "EpochEnd", "Event", "RunStarted", "RunFinished", "RunFailed", "RunCancelled",
           "ConfigError", "TrainConfig", "draw_seed", *_FIT]


def __getattr__(name: str):
    if name in _FIT:
        from . import loop
        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
