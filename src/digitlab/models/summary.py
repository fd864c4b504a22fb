"""A Keras-style layer table (layer, output shape, params), as the blog shows with tfjs-vis."""

from __future__ import annotations

import torch
from torch import nn

_KERAS_TYPES = {nn.Conv2d: ("Conv2D", "conv2d"), nn.MaxPool2d: ("MaxPooling2D", "max_pooling2d"),
                nn.Flatten: ("Flatten", "flatten"), nn.Linear: ("Dense", "dense")}
_ACTIVATIONS = (nn.ReLU, nn.Softmax)


def layer_table(model: nn.Module, input_shape=(1, 1, 28, 28)) -> list[dict]:
    """One row per layer: name, Keras type, output shape (None, H, W, C) and parameter count.

    Activations are folded into the layer before them, as Keras writes `Conv2D(activation='relu')`.
    """
    rows: list[dict] = []
    counts: dict[str, int] = {}
    x = torch.zeros(input_shape)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for module in model.children():
            x = module(x)
            if isinstance(module, _ACTIVATIONS) and rows:
                continue
            kind, stem = _KERAS_TYPES.get(type(module), (type(module).__name__, type(module).__name__.lower()))
            counts[kind] = counts.get(kind, 0) + 1
            shape = list(x.shape[1:])
            if len(shape) == 3:  # NCHW -> Keras' NHWC
                shape = shape[1:] + shape[:1]
            rows.append({
                "name": stem if counts[kind] == 1 else f"{stem}_{counts[kind] - 1}",
                "type": kind,
                "output_shape": [None, *shape],
                "params": sum(p.numel() for p in module.parameters()),
            })
    model.train(was_training)
    return rows


def format_summary(rows: list[dict], trainable: bool = True) -> str:
    """Render `layer_table` rows the way `model.summary()` prints in Keras."""
    total = sum(r["params"] for r in rows)
    rule, thick = "_" * 67, "=" * 67
    out = [rule, f"{'Layer (type)':<31}{'Output Shape':<26}{'Param #':<10}", thick]
    for i, r in enumerate(rows):
        shape = "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")"
        out.append(f"{r['name'] + ' (' + r['type'] + ')':<31}{shape:<26}{r['params']:<10,}")
        out.append(thick if i == len(rows) - 1 else rule)
    out += [f"Total params: {total:,}", f"Trainable params: {total if trainable else 0:,}",
            f"Non-trainable params: {0 if trainable else total:,}", rule]
    return "\n".join(out)
