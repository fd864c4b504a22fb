"""Model architectures by name. Every model takes (N, 1, 28, 28) floats in [0, 1] and returns logits,
one per class (10 by default; a dataset's K classes, 2 to 256, for models trained on it)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..training.config import ARCHITECTURES as DECLARED

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}  # factory(classes=10)
MIN_CLASSES, MAX_CLASSES = 2, 256


def register(name: str):
    """Decorator: make an architecture available by `name` (CLI, API, model records)."""
    def add(factory):
        ARCHITECTURES[name] = factory
        return factory
    return add


def check_declared() -> None:
    """The registry and TrainConfig's list of architectures must agree (a test calls this)."""
    if tuple(ARCHITECTURES) != DECLARED:
        raise RuntimeError(f"registered {tuple(ARCHITECTURES)} but TrainConfig declares {DECLARED}")


def build(name: str, classes: int = 10) -> nn.Module:
    """A new model of architecture `name` whose head has `classes` outputs."""
    if isinstance(classes, bool) or not isinstance(classes, int) or not MIN_CLASSES <= classes <= MAX_CLASSES:
        raise ValueError(f"classes: a model has {MIN_CLASSES} to {MAX_CLASSES} classes, got {classes!r}")
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    return factory(classes=classes)


@register("blog-cnn")
def blog_cnn(classes: int = 10) -> nn.Sequential:
    """The CNN of the TensorFlow.js browser-training blog post, layer for layer (53,866 parameters).

    conv 3x3x8 relu, maxpool 2, conv 3x3x16 relu, maxpool 2, flatten, dense 128 relu, dense 10
    (or one per class; the softmax lives in the loss while training and in the exported ONNX graph).
    """
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 5 * 16, 128), nn.ReLU(),
        nn.Linear(128, classes),
    )
