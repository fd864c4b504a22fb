"""Training: the fit loop, its typed events, hyperparameters and cancel. Knows nothing of the web."""

from .events import BatchEnd, EpochEnd, Event, RunStarted
from .fit import CancelToken, ConfigError, FitResult, TrainConfig, evaluate, fit, pick_device

__all__ = ["BatchEnd", "EpochEnd", "Event", "RunStarted", "CancelToken", "ConfigError", "FitResult",
           "TrainConfig", "evaluate", "fit", "pick_device"]
