import asyncio
import io
import json

import numpy as np
import pytest
import websockets

from server_util import serving
from strokes import render


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_home):
    with serving(tmp_path_factory.mktemp("srv"), models_from=trained_home) as srv:
        yield srv


def events_of(server, run, timeout=120):
    async def collect():
        out = []
        async with websockets.connect(server.ws_url(run), open_timeout=10) as ws:
            async for msg in ws:
                out.append(json.loads(msg))
        return out
    return asyncio.run(asyncio.wait_for(collect(), timeout))


def test_health_datasets_examples(server):
    assert server.client.get("/api/health").json()["status"] == "ok"
    names = [d["name"] for d in server.client.get("/api/datasets").json()["datasets"]]
    assert names[:3] == ["sample", "mnist", "fashion-mnist"]
    ex = server.client.get("/api/datasets/sample/examples", params={"split": "test", "count": 5, "seed": 3}).json()
    assert len(ex["examples"]) == 5
    import base64
    assert len(base64.b64decode(ex["examples"][0]["pixels"])) == 784
    assert server.client.get("/api/datasets/sample/examples", params={"count": 0}).status_code == 422
    assert server.client.get("/api/datasets/nope/examples").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"epochs": 0}, "epochs"), ({"epochs": -3}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 9000}, "batch_size"), ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate": -1}, "learning_rate"), ({"learning_rate": "NaN"}, "learning_rate"),
    ({"dataset": "nope"}, "dataset"), ({"name": "../x"}, "invalid model name"),
    ({"name": "a" * 4000}, "name"), ({"name": "a\x00b"}, "invalid model name"), ({"resume": "ghost"}, "ghost"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_run_requests_are_refused_with_a_reason(server, body, field):
    r = server.client.post("/api/runs", json=body)
    assert r.status_code in (404, 409, 422), r.text
    assert set(r.json()) == {"error"} and field in r.json()["error"]
    assert server.client.get("/api/runs").json()["active"] is None


def test_train_stream_then_use_the_model(server):
    r = server.client.post("/api/runs", json={"epochs": 2, "batch_size": 256, "name": "api-model"})
    assert r.status_code == 201, r.text
    run = r.json()["id"]
    second = server.client.post("/api/runs", json={"epochs": 1})
    assert second.status_code == 409 and "still training" in second.json()["error"]
    events = events_of(server, run)
    types = [e["type"] for e in events]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert types.count("epoch.end") == 2
    assert events[0]["train_size"] == 8000 + 4 * 1060  # the sample and, 4 times, the printed digits
    assert events[0]["batches"] == 48
    batches = [e for e in events if e["type"] == "batch.end"]
    assert 2 <= len(batches) <= 2 * 48  # thinned to <= 50/s, each epoch's last batch always sent
    assert [(e["epoch"], e["batch"]) for e in batches if e["batch"] == e["batches"]] == [(1, 48), (2, 48)]
    assert all(e["run"] == run for e in events)
    record = server.client.get(f"/api/runs/{run}").json()
    assert record["state"] == "finished" and len(record["epochs"]) == 2 and record["test_accuracy"] > 0.8
    # replay after the end: the same epochs and the end event, then the socket closes
    replay = events_of(server, run)
    assert [e["type"] for e in replay if e["type"] != "batch.end"] == [t for t in types if t != "batch.end"]

    model = server.client.get("/api/models/api-model").json()
    assert model["epochs"] == 2 and "weights" not in model
    summary = server.client.get("/api/models/api-model/summary").json()
    assert summary["total_params"] == 53866
    onnx = server.client.get("/api/models/api-model/model.onnx")
    assert onnx.status_code == 200 and len(onnx.content) > 100_000
    report = server.client.get("/api/models/api-model/evaluation").json()
    assert report["count"] == 2000 and len(report["confusion"]) == 10 and report["misclassified"]


def test_resume_continues_the_same_model(server):
    before = server.client.get("/api/models/base").json()["epochs"]
    r = server.client.post("/api/runs", json={"resume": "base", "epochs": 1, "batch_size": 256})
    assert r.status_code == 201 and r.json()["model"] == "base"
    assert server.wait_run(r.json()["id"])["state"] == "finished"
    after = server.client.get("/api/models/base").json()
    assert after["epochs"] == before + 1 and [h["epoch"] for h in after["history"]][-1] == before + 1


def test_predict_png_and_pixels(server):
    buf = io.BytesIO()
    render(7, left=30, top=20, height=120, width=10).save(buf, "PNG")
    r = server.client.post("/api/models/base/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["digit"] == 7 and len(r.json()["probabilities"]) == 10
    # a clear 7: sure, with the runner-up named; the thresholds are the model's own
    assert r.json()["sure"] is True and r.json()["runner_up"] != 7
    cal = server.client.get("/api/models/base").json()["calibration"]
    p = sorted(r.json()["probabilities"])
    assert p[-1] >= cal["min_probability"] and p[-1] - p[-2] >= cal["min_margin"]
    pixels = np.asarray(render(4).convert("L")).tolist()
    r = server.client.post("/api/models/base/predict", json={"pixels": pixels})
    assert r.status_code == 200 and r.json()["digit"] == 4


@pytest.mark.parametrize("content, ctype, status, text", [
    (b"", "image/png", 400, "empty body"),
    (b"not an image", "image/png", 422, "not a PNG or JPEG"),
    (json.dumps({"pixels": [[0] * 28] * 28}).encode(), "application/json", 422, "nothing drawn"),
    (json.dumps({"pixels": [[1e9] * 28] * 28}).encode(), "application/json", 422, "0..255"),
    (b'{"pixels": [[NaN]]}', "application/json", 422, "pixels"),
    (json.dumps({"pixels": [[1] * 10] * 10}).encode(), "application/json", 422, "pixels"),
    (b"\x00" * (6 << 20), "image/png", 413, "larger than"),
])
def test_predict_bad_input(server, content, ctype, status, text):
    r = server.client.post("/api/models/base/predict", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert text in r.json()["error"]


def _png(width, height, color=0):
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def _bomb_png() -> bytes:
    """A small PNG whose header claims 30000 x 30000 pixels (900 MP) of zeros."""
    import struct
    import zlib
    width = height = 30000
    raw = zlib.compress(b"\x00" * (width + 1) * 200)  # only a few rows: the header is what matters
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.mark.parametrize("body, status, text", [
    (_png(1, 1), 422, "at least 8x8"),
    (_bomb_png(), 422, "more than the"),
    (b"GIF89a" + b"\x00" * 20, 422, "PNG or JPEG"),
])
def test_predict_odd_images(server, body, status, text):
    r = server.client.post("/api/models/base/predict", content=body, headers={"content-type": "image/png"})
    assert r.status_code == status, r.text
    assert text in r.json()["error"]


def test_predict_very_wide_image_is_handled(server):
    from PIL import Image, ImageDraw
    img = Image.new("L", (10000, 10), 255)
    ImageDraw.Draw(img).line([(4000, 2), (4000, 8)], fill=0, width=2)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    r = server.client.post("/api/models/base/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200 and 0 <= r.json()["digit"] <= 9


def test_predict_unknown_or_bad_model_name(server):
    assert server.client.post("/api/models/ghost/predict", content=b"x").status_code == 404
    assert server.client.get("/api/models/..%2F..%2Fetc/summary").status_code in (400, 404)


def test_cancel_keeps_last_finished_epoch(server):
    run = server.client.post("/api/runs", json={"epochs": 50, "batch_size": 64, "name": "to-cancel"}).json()["id"]

    async def cancel_after_first_epoch():
        seen = []
        async with websockets.connect(server.ws_url(run)) as ws:
            async for msg in ws:
                event = json.loads(msg)
                seen.append(event)
                if event["type"] == "epoch.end" and event["epoch"] == 1:
                    server.client.post(f"/api/runs/{run}/cancel")
        return seen
    events = asyncio.run(asyncio.wait_for(cancel_after_first_epoch(), 120))
    end = events[-1]
    assert end["type"] == "run.cancelled" and end["epochs_done"] >= 1 and end["model"] == "to-cancel"
    model = server.client.get("/api/models/to-cancel").json()
    assert model["epochs"] == end["epochs_done"]
    assert server.client.get(f"/api/runs/{run}").json()["state"] == "cancelled"
    assert server.client.post(f"/api/runs/{run}/cancel").status_code == 409


def test_unknown_run_on_websocket(server):
    async def go():
        async with websockets.connect(server.ws_url("nope")) as ws:
            msg = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return msg, ws.close_code
    msg, code = asyncio.run(go())
    assert msg["type"] == "error" and "no run" in msg["error"] and code == 4404


def test_serving_a_folder_dataset(tmp_path):
    """`serve --dataset DIR`: the folder is offered by its name, for examples, training and evaluation."""
    from digitlab.data import load_dataset, write_idx
    from digitlab.data.datasets import STEMS

    sample = load_dataset("sample")
    folder = tmp_path / "my digits"
    folder.mkdir()
    for stem, arr in zip(STEMS, (sample.train_images[:1000], sample.train_labels[:1000],
                                 sample.test_images[:300], sample.test_labels[:300])):
        write_idx(folder / stem, arr)
    with serving(tmp_path / "home", "--dataset", str(folder)) as srv:
        datasets = {d["name"]: d for d in srv.client.get("/api/datasets").json()["datasets"]}
        assert datasets["my digits"]["default"] and datasets["my digits"]["train"] == 1000
        assert len(srv.client.get("/api/datasets/my digits/examples", params={"count": 3}).json()["examples"]) == 3
        r = srv.client.post("/api/runs", json={"dataset": "my digits", "epochs": 1, "batch_size": 100})
        assert r.status_code == 201, r.text
        assert r.json()["model"].startswith("my-digits-")  # model names never hold spaces
        assert srv.wait_run(r.json()["id"])["state"] == "finished"
        report = srv.client.get(f"/api/models/{r.json()['model']}/evaluation").json()
        assert report["count"] == 300


def test_training_worker_threads_yield_to_everything_interactive(server):
    """SCHED_IDLE on every thread of the worker (torch's and the batch shards' too)."""
    import os
    from pathlib import Path
    r = server.client.post("/api/runs", json={"epochs": 30, "batch_size": 64, "name": "idle-policy"})
    run = r.json()["id"]
    pid = server.worker_pid()
    policies = {}
    while server.client.get(f"/api/runs/{run}").json()["state"] == "running" and len(policies) < 3:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                policies[task.name] = int((task / "stat").read_text().rsplit(")", 1)[1].split()[38])
            except (FileNotFoundError, ProcessLookupError):
                pass
    server.client.post(f"/api/runs/{run}/cancel")
    server.wait_run(run)
    assert len(policies) >= 3, policies  # the main thread, the inbox reader, shard/torch threads
    assert set(policies.values()) == {os.SCHED_IDLE}, policies
