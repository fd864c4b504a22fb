"""Faults survived: killed worker, killed server, cancel at any moment, many and slow subscribers."""

import asyncio
import json
import os
import signal
import time

import pytest
import websockets

from digitlab.models import ModelStore
from server_util import Server


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "home")
    yield srv
    srv.stop()


def start(server, **body):
    r = server.client.post("/api/runs", json={"batch_size": 64, **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _listen(server, run, until=None, on_event=None):
    events = []
    async with websockets.connect(server.ws_url(run)) as ws:
        async for msg in ws:
            event = json.loads(msg)
            events.append((time.monotonic(), event))
            if on_event:
                on_event(event)
    return events


def test_kill_worker_mid_epoch(server):
    run = start(server, epochs=50, name="victim")
    pid = server.worker_pid()
    killed_at = {}

    def on_event(event):
        if event["type"] == "batch.end" and event["epoch"] == 2 and "t" not in killed_at:
            os.kill(pid, signal.SIGKILL)
            killed_at["t"] = time.monotonic()
    events = asyncio.run(asyncio.wait_for(_listen(server, run, on_event=on_event), 120))
    t_end, end = events[-1]
    assert end["type"] == "run.failed" and "SIGKILL" in end["error"]
    assert t_end - killed_at["t"] < 2.0
    assert server.client.get("/api/health").status_code == 200
    assert server.client.get(f"/api/runs/{run}").json()["state"] == "failed"
    # the model saved after epoch 1 is intact
    ModelStore(server.home).load("victim")
    # a new worker comes up and the next run trains to the end
    server.wait_worker(not_pid=pid)
    run2 = start(server, epochs=1, name="after")
    assert server.wait_run(run2)["state"] == "finished"


def test_kill_server_mid_run_then_restart(tmp_path):
    home = tmp_path / "home"
    srv = Server(home)
    run = start(srv, epochs=50, name="keep")
    deadline = time.time() + 60
    while not srv.client.get(f"/api/runs/{run}").json()["epochs"] and time.time() < deadline:
        time.sleep(0.05)
    worker = srv.worker_pid()
    srv.stop(signal.SIGKILL)
    # the orphaned worker notices the closed pipe and exits on its own
    deadline = time.time() + 10
    while worker and os.path.exists(f"/proc/{worker}") and time.time() < deadline:
        time.sleep(0.1)
        try:
            if open(f"/proc/{worker}/stat").read().split()[2] == "Z":
                break
        except FileNotFoundError:
            break
    srv2 = Server(home)
    try:
        record = srv2.client.get(f"/api/runs/{run}").json()
        assert record["state"] == "interrupted" and "server stopped" in record["error"]
        model, rec = ModelStore(home).load("keep")
        assert rec["epochs"] >= 1
        for folder in (home / "models").iterdir():
            assert not folder.name.startswith("."), folder  # no half-written model visible
            for f in folder.iterdir():
                assert not f.name.startswith(".") or ".tmp-" in f.name
        run2 = start(srv2, epochs=1, name="next")
        assert srv2.wait_run(run2)["state"] == "finished"
    finally:
        srv2.stop()


def test_cancel_right_after_start(server):
    run = start(server, epochs=3, name="early")
    assert server.client.post(f"/api/runs/{run}/cancel").status_code == 200
    record = server.wait_run(run)
    assert record["state"] == "cancelled"
    # nothing or a whole epoch was saved, never a broken model
    store = ModelStore(server.home)
    if store.exists("early"):
        store.load("early")
    assert server.client.post("/api/runs", json={"epochs": 1, "batch_size": 512}).status_code == 201


def test_fifty_subscribers_one_never_reading(server):
    """A stalled subscriber does not slow training (within 25%: the VM drifts); fifty, one stalled, all get every epoch.

    The 49 readers run on the same 2 cores as the training worker, which is SCHED_IDLE: they go
    first, so their CPU (not any blocking) is what the crowded run may lose; a worker blocked by a
    stalled socket would lose far more, or never finish.
    """
    def timed(name, readers, stalled):
        run = start(server, epochs=6, batch_size=32, name=name)
        got = []

        async def main():
            async def reader():
                epochs = 0
                async with websockets.connect(server.ws_url(run)) as ws:
                    async for msg in ws:
                        epochs += json.loads(msg)["type"] == "epoch.end"
                got.append(epochs)
            stuck = [await websockets.connect(server.ws_url(run), max_queue=1) for _ in range(stalled)]
            await asyncio.gather(*[reader() for _ in range(readers)])
            for ws in stuck:
                await ws.close()
        if readers or stalled:
            asyncio.run(asyncio.wait_for(main(), 180))
        record = server.wait_run(run, 180)
        assert record["state"] == "finished"
        assert got == [6] * readers  # every reader saw every epoch
        return sum(e["epoch_seconds"] for e in record["epochs"])
    timed("warm", 0, 0)
    alone = min(timed("alone-1", 0, 0), timed("alone-2", 0, 0))
    stalled = min(timed("stalled-1", 0, 1), timed("stalled-2", 0, 1))
    assert stalled <= alone * 1.25 + 0.5, (alone, stalled)  # the VM drifts; a blocked worker loses 60%+
    crowded = timed("crowd", 49, 1)
    assert crowded <= alone * 1.6 + 1.0, (alone, crowded)


def test_worker_dies_with_a_killed_server_and_writes_nothing_after(tmp_path):
    """kill -9 of the server: its training worker must never touch the model store again."""
    home = tmp_path / "home"
    srv = Server(home)
    run = start(srv, epochs=500, batch_size=256, name="orphan")
    deadline = time.time() + 60
    while len(srv.client.get(f"/api/runs/{run}").json()["epochs"]) < 2 and time.time() < deadline:
        time.sleep(0.05)
    worker = srv.worker_pid()
    folder = home / "models" / "orphan"

    def snapshot():
        return sorted((f.name, f.stat().st_mtime_ns) for f in folder.iterdir() if not f.name.startswith("."))
    srv.stop(signal.SIGKILL)
    gone_at = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        try:
            state = open(f"/proc/{worker}/stat").read().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            gone_at = time.monotonic() - t0
            break
        time.sleep(0.01)
    assert gone_at is not None and gone_at < 2.0, gone_at
    before = snapshot()
    time.sleep(2.0)
    assert snapshot() == before
    ModelStore(home).load("orphan")  # what was saved is whole
