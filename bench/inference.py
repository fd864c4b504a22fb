"""Inference speed: one image and a 10,000-image batch, ONNX Runtime (what digitlab uses) vs torch eager."""

from __future__ import annotations

import sys
import os
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import percentile, save  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> dict:
    import tempfile

    import numpy as np
    import torch

    from digitlab.data import load_dataset
    from digitlab.data.datasets import FASHION_SYSTEM_DIR, find_idx_files
    from digitlab.inference import Predictor, image_to_input
    from digitlab.job import train_model
    from digitlab.models import ModelStore
    from digitlab.training import TrainConfig
    from strokes import render

    torch.set_num_threads(1)
    home = tempfile.mkdtemp(prefix="digitlab-bench-")
    train_model(home, "sample", TrainConfig(epochs=2), name="bench")
    store = ModelStore(home)
    predictor = Predictor(store.onnx_path("bench"))
    model, _ = store.load("bench")
    ds = load_dataset("fashion-mnist" if find_idx_files(FASHION_SYSTEM_DIR) else "sample")
    x = ds.test_images.astype(np.float32) / 255.0
    one = x[:1]
    for _ in range(50):
        predictor.probabilities(one)
    single_ort = timed(lambda: predictor.probabilities(one), 2000)
    t_one = torch.from_numpy(one).reshape(1, 1, 28, 28)
    with torch.inference_mode():
        for _ in range(50):
            model(t_one)
        single_torch = timed(lambda: model(t_one), 2000)
    drawing = render(4)
    preprocess = timed(lambda: image_to_input(drawing), 200)
    batch_ort = timed(lambda: [predictor.probabilities(x[i:i + 2000]) for i in range(0, len(x), 2000)], 5)
    tx = torch.from_numpy(x).reshape(-1, 1, 28, 28)
    with torch.inference_mode():
        batch_torch = timed(lambda: [model(tx[i:i + 2000]) for i in range(0, len(x), 2000)], 5)
    result = {
        "threads": 1,
        "single_image_model_ms": {"onnxruntime_p50": percentile(single_ort, 0.5) * 1e3,
                                  "onnxruntime_p99": percentile(single_ort, 0.99) * 1e3,
                                  "torch_eager_p50": percentile(single_torch, 0.5) * 1e3},
        "preprocess_280px_drawing_ms_p50": percentile(preprocess, 0.5) * 1e3,
        "batch": {"images": int(len(x)), "onnxruntime_s": min(batch_ort), "torch_eager_s": min(batch_torch)},
    }
    save("inference", result)
    return result


if __name__ == "__main__":
    import json
    print(json.dumps(main(), indent=1))
