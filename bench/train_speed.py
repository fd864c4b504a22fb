"""Training speed: the default PyTorch loop vs digitlab's trainer, same data, same run.

Each configuration runs in its own process (so thread settings cannot leak between them):
the baseline with PyTorch's defaults (all cores, OpenMP's default wait policy, NCHW, one
backward per batch), digitlab's fit() as the app runs it. Epoch seconds are the second epoch
(the first includes warm-up). Also: time to accuracy with the default recipe, peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import save  # noqa: E402

ROUNDS = 2


def child(mode: str, dataset: str, batch: int, epochs: int, target: float | None) -> None:
    """Runs in a subprocess; prints one JSON line."""
    import torch

    from digitlab.data import load_dataset
    from digitlab.models import build
    from digitlab.training import EpochEnd, TrainConfig, fit
    from digitlab.training.reference import plain_fit

    ds = load_dataset(dataset)
    config = TrainConfig(epochs=epochs, batch_size=batch, seed=0)
    torch.manual_seed(0)
    model = build("blog-cnn")
    epochs_out = []
    t0 = time.perf_counter()
    if mode == "plain":
        for h in plain_fit(model, ds, config):
            epochs_out.append({"seconds": h["seconds"], "val_accuracy": h["val_accuracy"],
                               "elapsed": time.perf_counter() - t0})
    else:
        def on(e):
            if isinstance(e, EpochEnd):
                epochs_out.append({"seconds": e.epoch_seconds, "val_accuracy": e.val_accuracy, "elapsed": e.elapsed})
        fit(model, ds, config, callbacks=[on])
    to_target = next((e["elapsed"] for e in epochs_out if target and e["val_accuracy"] >= target), None)
    print(json.dumps({"epochs": epochs_out, "train_size": int(len(ds.train_labels)),
                      "seconds_to_target": to_target,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(mode: str, dataset: str, batch: int, epochs: int, target: float | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if mode != "plain":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # as the CLI and the worker set it
    out = subprocess.run([sys.executable, __file__, "--child", mode, dataset, str(batch), str(epochs), str(target or 0)],
                         capture_output=True, text=True, env=env, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict:
    from digitlab.data.datasets import FASHION_SYSTEM_DIR, find_idx_files

    dataset = "fashion-mnist" if find_idx_files(FASHION_SYSTEM_DIR) else "sample"
    rows = []
    for batch in (128, 1024):
        # interleaved and repeated: this shared machine's speed drifts by up to 2x over minutes
        plains, ours_runs = [], []
        for _ in range(ROUNDS):
            plains.append(run("plain", dataset, batch, 2))
            ours_runs.append(run("digitlab", dataset, batch, 2))
        plain = min(plains, key=lambda r: r["epochs"][-1]["seconds"])
        ours = min(ours_runs, key=lambda r: r["epochs"][-1]["seconds"])
        n = plain["train_size"]
        p, o = plain["epochs"][-1]["seconds"], ours["epochs"][-1]["seconds"]
        rows.append({"batch_size": batch, "images": n,
                     "baseline_epoch_s": round(p, 3), "baseline_images_per_s": round(n / p),
                     "digitlab_epoch_s": round(o, 3), "digitlab_images_per_s": round(n / o),
                     "speedup": round(p / o, 2),
                     "baseline_val_accuracy": plain["epochs"][-1]["val_accuracy"],
                     "digitlab_val_accuracy": ours["epochs"][-1]["val_accuracy"],
                     "digitlab_peak_rss_mb": round(ours["peak_rss_mb"])})
        print(f"batch {batch}: baseline {p:.2f} s/epoch, digitlab {o:.2f} s/epoch, x{p / o:.2f}", file=sys.stderr)
    fashion_tta = run("digitlab", dataset, 128, 20, 0.90) if dataset == "fashion-mnist" else None
    sample_tta = run("digitlab", "sample", 128, 20, 0.98)
    result = {
        "dataset": dataset, "rows": rows,
        "time_to_accuracy": {
            "fashion_mnist_90pct_s": fashion_tta and fashion_tta["seconds_to_target"],
            "fashion_mnist_final_accuracy": fashion_tta and fashion_tta["epochs"][-1]["val_accuracy"],
            "sample_98pct_s": sample_tta["seconds_to_target"],
            "sample_final_accuracy": sample_tta["epochs"][-1]["val_accuracy"],
            "sample_total_s": sample_tta["epochs"][-1]["elapsed"],
        },
        "peak_rss_mb_fashion_20_epochs": fashion_tta and round(fashion_tta["peak_rss_mb"]),
    }
    save("train_speed", result)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, dataset, batch, epochs, target = sys.argv
        child(mode, dataset, int(batch), int(epochs), float(target) or None)
    else:
        print(json.dumps(main(), indent=1))
