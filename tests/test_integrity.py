"""Nothing the user saved is lost or silently replaced; what is served is whole; replays tell the truth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import httpx
import pytest
import websockets

from digitlab.data import load_dataset, write_idx
from digitlab.data.datasets import STEMS
from digitlab.models import ModelStore
from server_util import serving


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_home):
    with serving(tmp_path_factory.mktemp("integrity"), models_from=trained_home) as srv:
        yield srv


def test_api_never_replaces_an_existing_model(server):
    before = server.client.get("/api/models/base").json()
    r = server.client.post("/api/runs", json={"epochs": 1, "name": "base"})
    assert r.status_code == 409 and "exists" in r.json()["error"]
    # resume A under the name of another existing model B: refused too
    assert server.client.post("/api/runs", json={"epochs": 1, "batch_size": 512, "name": "other"}).status_code == 201
    server.wait_run(server.client.get("/api/runs").json()["runs"][0]["id"])
    r = server.client.post("/api/runs", json={"epochs": 1, "resume": "other", "name": "base"})
    assert r.status_code == 409 and "exists" in r.json()["error"]
    assert server.client.get("/api/runs").json()["active"] is None
    after = server.client.get("/api/models/base").json()
    assert after["updated"] == before["updated"] and after["test_accuracy"] == before["test_accuracy"]
    # resuming a model under its own name is what resume means
    r = server.client.post("/api/runs", json={"epochs": 1, "batch_size": 512, "resume": "other"})
    assert r.status_code == 201 and r.json()["model"] == "other"
    assert server.wait_run(r.json()["id"])["state"] == "finished"


def _whole(kind: str, body: bytes) -> bool:
    if kind == "model.safetensors":
        n = int.from_bytes(body[:8], "little")
        header = json.loads(body[8:8 + n])
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        return len(body) == 8 + n + end
    import onnx
    onnx.load_from_string(body)
    return True


def test_downloads_never_race_the_next_epoch_save(server):
    """Loop downloads while a run saves a new version after each of its 40 epochs: every one is whole."""
    r = server.client.post("/api/runs", json={"epochs": 40, "batch_size": 1024, "name": "racing"})
    assert r.status_code == 201, r.text
    run = r.json()["id"]
    while not server.client.get(f"/api/runs/{run}").json()["epochs"]:
        pass
    failures, versions, done = [], set(), threading.Event()

    def loop(kind):
        with httpx.Client(base_url=server.base, timeout=30) as client:
            while not done.is_set():
                try:
                    resp = client.get(f"/api/models/racing/{kind}")
                    if resp.status_code != 200 or not _whole(kind, resp.content):
                        failures.append((kind, resp.status_code, resp.text[:200]))
                    versions.add(resp.headers.get("etag"))
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append((kind, repr(exc)))
    threads = [threading.Thread(target=loop, args=(k,)) for k in ("model.onnx", "model.safetensors")]
    for t in threads:
        t.start()
    record = server.wait_run(run, 300)
    done.set()
    for t in threads:
        t.join()
    assert record["state"] == "finished"
    assert len(record["epochs"]) == 40
    assert len(versions) >= 30, len(versions)  # the downloads really spanned 30+ saves
    assert failures == []


def test_etag_revalidates(server):
    r = server.client.get("/api/models/base/model.onnx")
    assert r.status_code == 200 and r.headers["etag"]
    again = server.client.get("/api/models/base/model.onnx", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_replay_agrees_with_the_stored_end_when_the_run_ends_mid_replay(tmp_path, monkeypatch):
    """A socket opened as the run ends: the end event lands in the database between the replay's
    read and the state check. It used to be answered with `run.failed: finished`."""
    from starlette.testclient import TestClient

    from digitlab.server.app import create_app

    app = create_app(tmp_path)
    with TestClient(app) as client:
        db = app.state.digitlab.db
        db.create("r1", "m", "sample", {})
        events = [{"type": "run.started", "run": "r1"}, {"type": "epoch.end", "run": "r1", "epoch": 1, "val_accuracy": 0.9},
                  {"type": "run.finished", "run": "r1", "test_accuracy": 0.9}]
        for seq, event in enumerate(events):
            db.add_event("r1", seq, event)
        db.finish("r1", "finished", test_accuracy=0.9)
        real = db.events
        calls = []

        def racing_events(run, after=-1):
            calls.append(after)
            rows = real(run, after)
            return rows[:-1] if len(calls) == 1 else rows  # the first read misses the end event
        monkeypatch.setattr(db, "events", racing_events)
        with client.websocket_connect("/api/runs/r1/events") as ws:
            got = [ws.receive_json() for _ in range(3)]
        assert [e["type"] for e in got] == ["run.started", "epoch.end", "run.finished"]


def test_many_sockets_at_a_runs_end_agree_with_its_record(server):
    """Open sockets in a tight loop across short runs' ends: the last event always matches the record."""
    async def last_event(run):
        async with websockets.connect(server.ws_url(run)) as ws:
            last = None
            async for msg in ws:
                last = json.loads(msg)
            return last

    async def hammer(run):
        seen = []
        while True:
            seen.append(await last_event(run))
            if seen[-1]["type"] != "batch.end" and seen[-1]["type"] in ("run.finished", "run.failed", "run.cancelled") \
                    and len(seen) > 3:
                return seen
    for i in range(3):
        r = server.client.post("/api/runs", json={"epochs": 2, "batch_size": 1024, "name": f"short-{i}"})
        run = r.json()["id"]
        seen = asyncio.run(asyncio.wait_for(hammer(run), 120))
        state = server.wait_run(run)["state"]
        assert state == "finished"
        assert all(e["type"] == "run.finished" for e in seen), [e for e in seen if e["type"] != "run.finished"][:3]


def _folder_dataset(folder, n_train=600, n_test=200):
    sample = load_dataset("sample")
    folder.mkdir(parents=True)
    for stem, arr in zip(STEMS, (sample.train_images[:n_train], sample.train_labels[:n_train],
                                 sample.test_images[:n_test], sample.test_labels[:n_test])):
        write_idx(folder / stem, arr)
    return folder


@pytest.mark.parametrize("folder_name", ["sample", "mnist"])
def test_a_folder_named_like_a_builtin_is_served_as_the_folder(tmp_path, folder_name):
    folder = _folder_dataset(tmp_path / folder_name)
    with serving(tmp_path / "home", "--dataset", str(folder)) as srv:
        datasets = {d["name"]: d for d in srv.client.get("/api/datasets").json()["datasets"]}
        mine = datasets[f"{folder_name}-folder"]
        assert mine["default"] and mine["available"] and mine["train"] == 600
        assert datasets["sample"]["train"] != 600  # the built-in one is still itself
        r = srv.client.post("/api/runs", json={"dataset": f"{folder_name}-folder", "epochs": 1, "batch_size": 100})
        assert r.status_code == 201, r.text
        assert srv.wait_run(r.json()["id"])["state"] == "finished"
        model = srv.client.get(f"/api/models/{r.json()['model']}").json()
        assert model["dataset"] == str(folder.resolve()) and model["dataset_name"] == folder_name
        assert srv.client.get(f"/api/models/{r.json()['model']}/evaluation").json()["count"] == 200


def test_a_folder_dataset_is_remembered_by_its_path(tmp_path):
    """`train --dataset ds/one` then `evaluate` from elsewhere; `--dataset .` has a real name."""
    ds = _folder_dataset(tmp_path / "ds" / "one")
    home = tmp_path / "home"
    run = lambda *a, cwd=tmp_path: subprocess.run([sys.executable, "-m", "digitlab.cli", *a, "--home", str(home)],  # noqa: E731
                                                 capture_output=True, text=True, timeout=300, cwd=cwd)
    assert run("train", "--dataset", "ds/one", "--epochs", "1", "--name", "one").returncode == 0
    assert run("train", "--dataset", ".", "--epochs", "1", "--name", "dot", cwd=ds).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("one", "dot"):
        rec = ModelStore(home).record(name)
        assert rec["dataset"] == str(ds.resolve()) and rec["dataset_name"] == "one"
        out = run("evaluate", "--model", name, "--json", cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["count"] == 200
