"""The predict route under concurrent load from a second process, idle and while training.

Loopback only, bounded in requests and time. Reports requests/s, p50/p99 latency and errors.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import percentile, save, server_with_model  # noqa: E402

REQUESTS, CONCURRENCY, TIME_LIMIT = 1500, 8, 60.0

CLIENT = r"""
import json, sys, time, threading
from concurrent.futures import ThreadPoolExecutor
import httpx
url, body_path, n, conc, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
body = open(body_path, 'rb').read()
lat, errors, lock = [], [], threading.Lock()
deadline = time.monotonic() + limit
local = threading.local()
def one(_):
    if time.monotonic() > deadline:
        return
    client = getattr(local, 'c', None) or httpx.Client(timeout=10)
    local.c = client
    t = time.perf_counter()
    try:
        r = client.post(url, content=body, headers={'content-type': 'image/png'})
        ok = r.status_code == 200 and 'digit' in r.json()
    except Exception as exc:
        ok = False
    dt = time.perf_counter() - t
    with lock:
        (lat if ok else errors).append(dt)
start = time.perf_counter()
with ThreadPoolExecutor(conc) as pool:
    list(pool.map(one, range(n)))
wall = time.perf_counter() - start
print(json.dumps({'latencies': lat, 'errors': len(errors), 'wall': wall}))
"""


def measure(server, body_path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CLIENT, server.base + "/api/models/bench/predict", body_path,
                          str(REQUESTS), str(CONCURRENCY), str(TIME_LIMIT)],
                         capture_output=True, text=True, timeout=TIME_LIMIT + 60)
    data = json.loads(out.stdout)
    lat = data["latencies"]
    return {"requests": len(lat) + data["errors"], "errors": data["errors"],
            "requests_per_s": round(len(lat) / data["wall"], 1),
            "p50_ms": round(percentile(lat, 0.5) * 1e3, 2), "p99_ms": round(percentile(lat, 0.99) * 1e3, 2)}


def main() -> dict:
    from strokes import render

    with server_with_model("digitlab-load-") as server:
        buf = io.BytesIO()
        render(7).save(buf, "PNG")
        body = server.home / "seven.png"
        body.write_bytes(buf.getvalue())
        idle = measure(server, str(body))
        run = server.client.post("/api/runs", json={"epochs": 500, "batch_size": 64, "name": "busy"}).json()["id"]
        time.sleep(3)
        busy = measure(server, str(body))
        record = server.client.get(f"/api/runs/{run}").json()
        server.client.post(f"/api/runs/{run}/cancel")
        server.wait_run(run)
    result = {"concurrency": CONCURRENCY, "body": "280x280 PNG drawing", "idle": idle, "while_training": busy,
              "p50_slowdown_while_training": round(busy["p50_ms"] / idle["p50_ms"], 2),
              "training_still_running": record["state"] == "running"}
    save("load", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
