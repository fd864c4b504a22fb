"""Evaluate a model on a dataset's test split: accuracy, loss, per-class accuracy, K x K confusion matrix."""

from __future__ import annotations

import os

import numpy as np

from .data import DatasetError
from .inference import Predictor


def evaluate_model(model: Predictor | str | os.PathLike, dataset, misclassified: int = 48) -> dict:
    """Run the whole test split through the model's ONNX graph (a Predictor or an ONNX path) in batches."""
    predictor = model if isinstance(model, Predictor) else Predictor(model, threads=1)
    x = dataset.test_images.astype(np.float32) / 255.0
    y = dataset.test_labels.astype(np.int64)
    probs = np.concatenate([predictor.probabilities(x[i:i + 2000]) for i in range(0, len(x), 2000)])
    k = probs.shape[1]  # the model's classes
    if k != len(dataset.classes):
        raise DatasetError(f"the model has {k} classes but dataset {dataset.name} has {len(dataset.classes)}: "
                           "evaluate it on a dataset of its own classes")
    pred = probs.argmax(1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    wrong = np.flatnonzero(pred != y)[:misclassified]
    return {
        "dataset": dataset.name,
        "count": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "loss": loss,
        "per_class_accuracy": [round(float(a), 6) for a in per_class],
        "confusion": confusion.tolist(),
        "misclassified": [{"index": int(i), "label": int(y[i]), "predicted": int(pred[i]),
                           "confidence": float(probs[i, pred[i]])} for i in wrong],
    }
