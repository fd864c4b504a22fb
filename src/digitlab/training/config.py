"""Training hyperparameters: the one place that names each, with its default, limits and help.

The HTTP request model (`server/routes/runs.py`), the CLI's options (`cli.py`) and the page's form
limits (`GET /api/train-config`) are all derived from `TrainConfig`'s fields. No torch here, so
the server can validate a request without importing it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

SEED_MAX = 2**31 - 1  # fits every RNG we seed, JavaScript's numbers and SQLite's integers
DEVICES = ("auto", "cpu", "cuda", "mps")
ARCHITECTURES = ("blog-cnn",)  # the registered architectures (digitlab.models checks it matches)
DEFAULT_ARCHITECTURE = ARCHITECTURES[0]


class ConfigError(ValueError):
    """A hyperparameter is out of range; the message names it."""


def param(default: Any, help: str, *, minimum=None, maximum=None, exclusive_minimum=None, choices=None,
          flag: str | None = None, api: bool = True) -> Any:
    """A TrainConfig field with its limits and help text (read by the CLI, the API and the page).

    `flag`: the CLI option (default `--name-with-dashes`); `api`: offered over HTTP and in the form.
    """
    return field(default=default, metadata={
        "help": help, "minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum,
        "choices": choices, "flag": flag, "api": api})


@dataclass
class TrainConfig:
    """Hyperparameters; the defaults (chosen on the drawn-digit benchmark, bench/handwriting.py) reach
    ~98.6% on the embedded sample and ~98.5% on drawn digits, in ~4 s on 2 idle CPU cores."""

    epochs: int = param(14, "passes over the training set", minimum=1, maximum=1000)
    batch_size: int = param(128, "images per training step", minimum=1, maximum=65536)
    learning_rate: float = param(4e-3, "peak learning rate of the one-cycle schedule", exclusive_minimum=0,
                                 maximum=1, flag="--lr")
    seed: int = param(0, "fixes the initial weights, shuffling and augmentation", minimum=0, maximum=SEED_MAX)
    augment: int = param(2, "largest random shift of an image in pixels (0: none)", minimum=0, maximum=4)
    distort: float = param(1.0, "strength of the random rotation, scale, shear and stroke-width changes "
                           "of each image of a dataset of the digits 0-9 (0: none; 1: up to 12 degrees, 1.2x, "
                           "shear 0.35, a pixel of stroke; other datasets are only shifted)", minimum=0, maximum=1)
    printed: int = param(4, "times the 1,060 printed-font digits join the training images of a dataset of the "
                         "digits 0-9 (0: none; other datasets never get them)", minimum=0, maximum=8)
    architecture: str = param(DEFAULT_ARCHITECTURE, "the network to train (a new model only)",
                              choices=ARCHITECTURES)
    device: str = param("auto", "where to train", choices=DEVICES, api=False)
    threads: int = param(0, "CPU cores to train on, one batch shard each (0: all)", minimum=0, maximum=256,
                         api=False)

    def validate(self, train_size: int | None = None) -> "TrainConfig":
        """Check every field against its declared limits (and the batch size against the data)."""
        for f in fields(self):
            check(f.name, getattr(self, f.name))
        if train_size is not None and self.batch_size > train_size:
            raise ConfigError(f"batch_size: {self.batch_size} is larger than the {train_size} training images")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A config from a record or a request, unknown keys refused, then validated."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        return cls(**data).validate()


def spec(name: str) -> dict:
    """One field's declaration: default, type, limits, help (JSON-Schema words)."""
    f = FIELDS[name]
    meta = f.metadata
    out = {"name": f.name, "type": {"int": "integer", "float": "number", "str": "string"}[f.type],
           "default": f.default if f.default is not MISSING else None, "help": meta["help"]}
    for key, word in (("minimum", "minimum"), ("maximum", "maximum"), ("exclusive_minimum", "exclusiveMinimum")):
        if meta[key] is not None:
            out[word] = meta[key]
    if meta["choices"]:
        out["enum"] = list(meta["choices"])
    return out


def check(name: str, value: Any) -> Any:
    """`value` checked against field `name`'s type and limits; ConfigError names the field."""
    s = spec(name)
    kind = s["type"]
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if kind == "string" and not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    if "enum" in s and value not in s["enum"]:
        raise ConfigError(f"{name}: must be one of {', '.join(s['enum'])}, got {value!r}")
    low, high, above = s.get("minimum"), s.get("maximum"), s.get("exclusiveMinimum")
    if (low is not None and value < low) or (high is not None and value > high) or (above is not None and value <= above):
        lo = f"from {low}" if low is not None else f"above {above}"
        raise ConfigError(f"{name}: must be {lo} to {high}, got {value!r}")
    return value


def api_fields() -> list[dict]:
    """The fields a request or the page's form may set, as `spec` dicts (`GET /api/train-config`)."""
    return [spec(f.name) for f in fields(TrainConfig) if f.metadata["api"]]


def draw_seed() -> int:
    """A fresh seed for "random": drawn here so that the run records it and can be repeated."""
    return secrets.randbelow(SEED_MAX + 1)


FIELDS = {f.name: f for f in fields(TrainConfig)}
