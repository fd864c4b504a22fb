"""Reading drawn digits: accuracy on the drawn-digit benchmark (digitlab.data.drawn), per digit,
per style and per pen/size/slant/position, for each training recipe; calibration error before
and after the temperature; the sample's test accuracy and the run's time, side by side.

    python bench/handwriting.py                 # the recipes below, both halves
    python bench/handwriting.py default shift   # some of them

Recipes are chosen on the "tune" half; the "held-out" half is only ever reported.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from common import save  # noqa: E402

# name -> TrainConfig overrides (the default recipe is TrainConfig's defaults)
RECIPES = {
    "default": {},
    "no-printed": {"printed": 0},  # augmentation alone
    "shift-only": {"distort": 0.0, "printed": 0, "epochs": 20},  # close to 0.2.0's recipe (per-image shifts)
    "default-seed-1": {"seed": 1},  # how much a seed moves the numbers
}


def breakdown(digits, correct: np.ndarray) -> dict:
    """Accuracy per digit, per style and per tag value."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for d, ok in zip(digits, correct):
        groups["digit"][str(d.label)].append(bool(ok))
        groups["style"][d.style].append(bool(ok))
        for key, value in d.tags.items():
            groups[key][value].append(bool(ok))
    return {g: {k: round(float(np.mean(v)), 4) for k, v in sorted(rows.items())} for g, rows in groups.items()}


def evaluate_recipe(name: str, overrides: dict, dataset, halves: dict) -> dict:
    import torch

    from digitlab.inference.confidence import expected_calibration_error as ece
    from digitlab.inference.confidence import flags, softmax
    from digitlab.training.calibrate import calibrate
    from digitlab.models import build
    from digitlab.training import TrainConfig, fit

    config = TrainConfig(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build(config.architecture)
    t0 = time.perf_counter()
    result = fit(model, dataset, config)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    cal = calibrate(model, dataset)
    calibrate_s = time.perf_counter() - t1
    model.eval()
    out = {"config": config.to_dict(), "train_s": round(seconds, 2), "calibrate_s": round(calibrate_s, 2),
           "epoch_s": round(float(np.median([e.epoch_seconds for e in result.history])), 3),
           "sample_test_accuracy": round(result.history[-1].val_accuracy, 4), "calibration": cal, "halves": {}}
    for half, (digits, x) in halves.items():
        with torch.inference_mode():
            logits = model(torch.from_numpy(x).unsqueeze(1)).double().numpy()
        labels = np.array([d.label for d in digits])
        raw = softmax(logits)
        scaled = softmax(logits / cal["temperature"])
        top = scaled.argmax(1)
        correct = top == labels
        unsure = ~flags(scaled, cal["min_probability"], cal["min_margin"])
        out["halves"][half] = {
            "n": len(digits), "accuracy": round(float(correct.mean()), 4),
            "ece_before": round(ece(raw, labels), 4), "ece_after": round(ece(scaled, labels), 4),
            "wrong_flagged_unsure": round(float(unsure[~correct].mean()) if (~correct).any() else 1.0, 4),
            "right_flagged_unsure": round(float(unsure[correct].mean()), 4),
            **breakdown(digits, correct)}
    return out


def main(names: list[str] | None = None) -> dict:
    from digitlab.data import drawn, load_dataset

    names = names or list(RECIPES)
    dataset = load_dataset("sample")
    halves = {}
    for half in ("tune", "held-out"):
        digits = drawn.split(half)
        halves[half] = (digits, drawn.inputs(digits))
    results = {}
    for name in names:
        print(f"  recipe {name}...", file=sys.stderr, flush=True)
        results[name] = evaluate_recipe(name, RECIPES[name], dataset, halves)
        r = results[name]
        print(f"  {name}: tune {r['halves']['tune']['accuracy']:.2%}, held-out {r['halves']['held-out']['accuracy']:.2%}, "
              f"sample test {r['sample_test_accuracy']:.2%}, {r['train_s']} s", file=sys.stderr, flush=True)
    data = {"dataset": "sample", "benchmark_size": {h: len(v[0]) for h, v in halves.items()}, "recipes": results}
    save("handwriting", data)
    return data


if __name__ == "__main__":
    args = sys.argv[1:]
    unknown = [a for a in args if a not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    main(args)
