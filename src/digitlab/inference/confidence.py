"""Confidence that means something: a temperature fitted after training, the calibration error,
and when to say "not sure". Numpy only (the server and the CLI's predict use it without torch).

A model's record holds `calibration`: {"temperature", "min_probability", "min_margin", ...}.
The ONNX export divides the logits by the temperature, so onnxruntime, the page and the API all
give the calibrated probabilities; a prediction is `sure` when the top probability is at least
`min_probability` and leads the runner-up by at least `min_margin`.
"""

from __future__ import annotations

import math

import numpy as np

#: for models saved before calibration existed: no temperature, and the thresholds that the
#: default recipe's calibration picks (bench/handwriting.py)
DEFAULTS = {"temperature": 1.0, "min_probability": 0.84, "min_margin": 0.72}
#: the share of right answers on the calibration set left "not sure". Chosen on the drawn-digit
#: benchmark's tune half: 0.03 flagged 43% of the wrong answers, 0.10 flags 71% of them and 1.7%
#: of the right ones, 0.15 86% and 3.3%.
RIGHT_FLAG_RATE = 0.10
BINS = 15


def of_record(record: dict) -> dict:
    """The record's calibration, with the defaults filled in (and nonsense replaced by them)."""
    stored = record.get("calibration") if isinstance(record.get("calibration"), dict) else {}
    out = dict(stored)
    for key, default in DEFAULTS.items():
        value = stored.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > 0 if key == "temperature" else 0 <= value <= 1)
        out[key] = float(value) if ok else default
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The mean |accuracy - confidence| over `bins` equal-width bins of the top probability,
    weighted by how many predictions fall in each."""
    p = np.asarray(probabilities, dtype=np.float64)
    top = p.max(axis=1)
    correct = p.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((top * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - top[inside].mean())
    return float(total / len(top))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(z)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T): a golden-
    section search on log T (the NLL is unimodal in it)."""
    labels = np.asarray(labels)
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(40):  # the bracket shrinks to 1e-8 of its width
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return round(math.exp((a + b) / 2), 4)


def top_two(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top probability and its lead over the runner-up, per row."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)
    return p[:, -1], p[:, -1] - p[:, -2]


def flags(probabilities: np.ndarray, min_probability: float, min_margin: float) -> np.ndarray:
    """True where the prediction is sure (top probability and its lead both high enough)."""
    top, margin = top_two(probabilities)
    return (top >= min_probability) & (margin >= min_margin)


def choose_thresholds(probabilities: np.ndarray, labels: np.ndarray, rate: float = RIGHT_FLAG_RATE) -> tuple[float, float]:
    """Thresholds that leave about `rate` of the right answers "not sure" (half to each test)."""
    p = np.asarray(probabilities)
    right = p.argmax(axis=1) == np.asarray(labels)
    if not right.any():
        return DEFAULTS["min_probability"], DEFAULTS["min_margin"]
    top, margin = top_two(p[right])
    return round(float(np.quantile(top, rate / 2)), 4), round(float(np.quantile(margin, rate / 2)), 4)


def is_sure(probabilities, calibration: dict) -> bool:
    """One prediction's probabilities (already calibrated) -> whether the model is sure."""
    row = np.asarray(probabilities, dtype=np.float64)[None]
    return bool(flags(row, calibration["min_probability"], calibration["min_margin"])[0])
