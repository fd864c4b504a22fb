"""Portable model files: ONNX (temperature and softmax included, for onnxruntime and onnxruntime-web)."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"


class Temperature(nn.Module):
    """logits / T: the calibrated probabilities (inference/confidence.py) come out of the graph itself."""

    def __init__(self, temperature: float):
        super().__init__()
        self.scale = 1.0 / float(temperature)

    def forward(self, x):
        return x * self.scale


def onnx_bytes(model: nn.Module, temperature: float = 1.0) -> bytes:
    """The model, its temperature and a softmax as ONNX: input `image` (N, 1, 28, 28) floats in
    [0, 1], output `probabilities` (N, K) = softmax(logits / temperature).

    Uses the TorchScript-based exporter: about 0.1 s for this model (the dynamo one takes 2 s),
    which matters because the app exports after every epoch.
    """
    was_training = model.training
    layers = [model] + ([Temperature(temperature)] if temperature != 1.0 else []) + [nn.Softmax(dim=1)]
    wrapped = nn.Sequential(*layers).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    model.train(was_training)
    return buf.getvalue()
