"""Shared helpers for the benchmarks: machine description, percentiles, result files."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # server_util, strokes


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform()}


def percentile(values, q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": "make bench",
            "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


@contextlib.contextmanager
def server_with_model(prefix: str, name: str = "bench", epochs: int = 2):
    """A running `digitlab serve` on a fresh home holding one model trained through the API."""
    from server_util import serving

    with serving(Path(tempfile.mkdtemp(prefix=prefix))) as server:
        run = server.client.post("/api/runs", json={"epochs": epochs, "name": name}).json()["id"]
        server.wait_run(run)
        yield server
