"""Fit a model's temperature and "sure" thresholds after training (inference/confidence.py).

The calibration set is the dataset's test split, each image warped once by the training
augmentation with a fixed seed: a held-out set that already looks a little like handwriting
that is not MNIST's, so the temperature learns how far to trust the model off its home ground.
A temperature never changes which class wins, so the test accuracy stays what it was.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..inference import confidence
from . import augment

CALIBRATION_SEED = 271828
CALIBRATION_SHIFT, CALIBRATION_DISTORT = 2, 1.0


@torch.inference_mode()
def logits_of(model: nn.Module, images: torch.Tensor, chunk: int = 2500) -> np.ndarray:
    """Float images (N, 1, 28, 28) -> (N, K) logits, in eval mode on the model's device, through the
    same fast path as training (the fused CPU kernels when they fit: 10x PyTorch's own convolutions here)."""
    from .loop import training_path

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    _, view = training_path(model, device)
    out = [view(images[i:i + chunk].to(device)).double().cpu() for i in range(0, len(images), chunk)]
    model.train(was_training)
    return torch.cat(out).numpy()


_SETS: dict[str, tuple[torch.Tensor, np.ndarray]] = {}


def calibration_set(dataset) -> tuple[torch.Tensor, np.ndarray]:
    """The test split, each image warped once with a fixed seed (made once per dataset content);
    as in training, only digit datasets get the handwriting distortions, others only shifts."""
    from ..data.datasets import is_digits

    key = dataset.content_hash
    if key not in _SETS:
        gen = torch.Generator().manual_seed(CALIBRATION_SEED)
        x = torch.from_numpy(np.array(dataset.test_images, dtype=np.uint8)).unsqueeze(1).float().div_(255)
        distort = CALIBRATION_DISTORT if is_digits(dataset) else 0.0
        draws = augment.draw(len(x), CALIBRATION_SHIFT, distort, gen)
        _SETS.clear()  # one dataset at a time: a run trains on one
        _SETS[key] = (augment.apply(x, draws), np.asarray(dataset.test_labels, dtype=np.int64))
    return _SETS[key]


def calibrate(model: nn.Module, dataset, seed: int | None = None) -> dict:
    """The record's `calibration`: temperature, thresholds, and the calibration error before/after."""
    x, labels = calibration_set(dataset)
    logits = logits_of(model, x)
    temperature = confidence.fit_temperature(logits, labels)
    before, after = confidence.softmax(logits), confidence.softmax(logits / temperature)
    min_probability, min_margin = confidence.choose_thresholds(after, labels)
    return {"temperature": temperature, "min_probability": min_probability, "min_margin": min_margin,
            "ece_before": round(confidence.expected_calibration_error(before, labels), 4),
            "ece_after": round(confidence.expected_calibration_error(after, labels), 4),
            "fitted_on": f"test split, warped once (shift {CALIBRATION_SHIFT}, handwriting distortions on digits)",
            "images": int(len(labels))}
