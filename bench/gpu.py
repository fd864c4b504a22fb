"""The GPU check, for a machine with CUDA: training speed on the GPU, and CPU vs CUDA from the same
seed. Prints one JSON object (and writes bench/results/gpu.json).

    .venv/bin/python bench/gpu.py                 # about 2-4 minutes on a GPU machine
    .venv/bin/python bench/gpu.py --require-cuda  # exit 1 (not 0) when there is no usable GPU

- speed: digitlab's fit() on the GPU, the embedded sample and Fashion-MNIST (when Debian's package
  or the download cache has it), batch 128 and 1024, 3 epochs: the last epoch's training time and
  its time with the validation pass; and whether the whole dataset stayed on the device (the
  tensors fit() trains from are checked, not assumed);
- equivalence: the same config and seed on the CPU and on CUDA (sample, 4 epochs, batch 128):
  the final test accuracy must agree within 0.5 points and every epoch's training and validation
  loss within 5% (cuDNN's TF32 convolutions and its non-deterministic backward make the curves
  drift apart a little; the shuffles and augmentation draws are the same).

Without CUDA (no GPU, or a CPU-only torch) it prints {"cuda": false, "reason": ...} and exits 0,
so it can run anywhere; with --require-cuda it exits 1 instead. `--dry-run` runs every step with
the CPU in the GPU's place (2 epochs, the sample only, nothing saved): a check of this script
itself on a machine without a GPU.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ACCURACY_POINTS = 0.5
LOSS_RELATIVE = 0.05
SPEED_EPOCHS, CHECK_EPOCHS = 3, 4
GPU = "cuda"  # --dry-run: "cpu"


def cuda_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    import torch

    if not torch.backends.cuda.is_built():
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (driver, device or CUDA_VISIBLE_DEVICES)"
    return None


def train(dataset, device: str, batch: int, epochs: int, seed: int = 0) -> dict:
    """fit() a new blog CNN; its per-epoch history, and where the tensors it trained from lived."""
    import torch

    from digitlab.models import build
    from digitlab.training import EpochEnd, TrainConfig, fit
    from digitlab.training import loop

    seen: list[dict] = []  # the train split (printed digits included), then the test split
    original = loop.as_tensors

    def watched(images, labels, dev):
        x, y = original(images, labels, dev)
        seen.append({"images": str(x.device), "labels": str(y.device), "count": int(x.shape[0])})
        return x, y

    loop.as_tensors = watched
    history = []
    try:
        torch.manual_seed(seed)
        model = build("blog-cnn", classes=len(dataset.classes))
        fit(model, dataset, TrainConfig(epochs=epochs, batch_size=batch, seed=seed, device=device),
            callbacks=[lambda e: history.append(e) if isinstance(e, EpochEnd) else None])
    finally:
        loop.as_tensors = original
    return {"history": [{k: getattr(e, k) for k in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds",
                                                     "elapsed")} for e in history],
            "tensors": seen}


def speed(datasets: dict) -> list[dict]:
    import torch

    rows = []
    for name, ds in datasets.items():
        for batch in (128, 1024):
            r = train(ds, GPU, batch, SPEED_EPOCHS)
            h = r["history"]
            on_device = len(r["tensors"]) == 2 and all(t[k].startswith(GPU) for t in r["tensors"]
                                                       for k in ("images", "labels"))
            n = r["tensors"][0]["count"]
            rows.append({"dataset": name, "batch_size": batch, "train_images": n,
                         "epoch_s": round(h[-1]["epoch_seconds"], 4),
                         "epoch_with_validation_s": round(h[-1]["elapsed"] - h[-2]["elapsed"], 4),
                         "images_per_s": round(n / h[-1]["epoch_seconds"]),
                         "val_accuracy": h[-1]["val_accuracy"], "dataset_on_device": on_device,
                         "tensors": r["tensors"],
                         "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if GPU == "cuda" else None})
            print(f"{name} batch {batch}: {rows[-1]['epoch_s']:.3f} s/epoch on the GPU "
                  f"({rows[-1]['images_per_s']:,} img/s), dataset on device: {on_device}", file=sys.stderr)
    return rows


def equivalence(dataset) -> dict:
    cpu = train(dataset, "cpu", 128, CHECK_EPOCHS)["history"]
    gpu = train(dataset, GPU, 128, CHECK_EPOCHS)["history"]
    worst = max(max(abs(g[k] - c[k]) / abs(c[k]) for k in ("loss", "val_loss")) for c, g in zip(cpu, gpu))
    points = abs(cpu[-1]["val_accuracy"] - gpu[-1]["val_accuracy"]) * 100
    ok = points <= ACCURACY_POINTS and worst <= LOSS_RELATIVE
    return {"ok": ok, "epochs": CHECK_EPOCHS, "batch_size": 128, "accuracy_cpu": cpu[-1]["val_accuracy"],
            "accuracy_cuda": gpu[-1]["val_accuracy"], "accuracy_difference_points": round(points, 3),
            "max_loss_relative_difference": round(worst, 5),
            "limits": {"accuracy_points": ACCURACY_POINTS, "loss_relative": LOSS_RELATIVE},
            "loss_cpu": [e["loss"] for e in cpu], "loss_cuda": [e["loss"] for e in gpu],
            "val_loss_cpu": [e["val_loss"] for e in cpu], "val_loss_cuda": [e["val_loss"] for e in gpu]}


def main(argv: list[str]) -> int:
    import torch

    from common import save

    global GPU, SPEED_EPOCHS, CHECK_EPOCHS
    dry = "--dry-run" in argv
    if dry:
        GPU, SPEED_EPOCHS, CHECK_EPOCHS = "cpu", 2, 2
    reason = None if dry else cuda_reason()
    if reason is not None:
        print(json.dumps({"cuda": False, "reason": reason, "torch": torch.__version__}))
        return 1 if "--require-cuda" in argv else 0
    from digitlab.data import DatasetError, load_dataset

    datasets = {"sample": load_dataset("sample")}
    try:
        if not dry:
            datasets["fashion-mnist"] = load_dataset("fashion-mnist", allow_download=False)
    except DatasetError as exc:
        print(f"fashion-mnist skipped: {exc}", file=sys.stderr)
    started = time.perf_counter()
    result = {"cuda": not dry, "dry_run": dry, "gpu": torch.cuda.get_device_name(0) if not dry else None,
              "cuda_version": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if not dry else None,
              "tf32_convolutions": torch.backends.cudnn.allow_tf32,
              "speed": speed(datasets), "equivalence": equivalence(datasets["sample"])}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["ok"] = result["equivalence"]["ok"] and all(r["dataset_on_device"] for r in result["speed"])
    if not dry:
        save("gpu", result)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
