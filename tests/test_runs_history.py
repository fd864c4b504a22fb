"""The run history: paged list, best and final accuracy, thinned curves, deleting a record (not its model)."""

import json
import sqlite3
import time

import pytest

from digitlab.server.db import RunDB
from digitlab.server.series import thin
from history_util import long_run
from server_util import serving


def test_thin_keeps_each_columns_extremes_in_order():
    xs = [i / 10 for i in range(10_000)]
    ys = [((i * 7919) % 1000) / 1000 for i in range(10_000)]
    tx, ty = thin(xs, ys, 200)
    assert len(tx) <= 200 and tx == sorted(tx)
    assert min(ty) == min(ys) and max(ty) == max(ys)
    assert tx[0] == xs[0] and thin(xs[:50], ys[:50], 200) == (xs[:50], ys[:50])


def test_long_run_series_are_thinned_and_quick(tmp_path):
    db = RunDB(tmp_path / "runs.sqlite3")
    long_run(db, "r1", epochs=2000, batches=100, stored=25)
    t0 = time.perf_counter()
    s = db.series("r1", points=800)
    took = time.perf_counter() - t0
    assert s["batches_stored"] == 50_000 and s["epochs_stored"] == 2000
    for part in (s["batch"]["loss"], s["batch"]["accuracy"], s["epoch"]["val_loss"], s["epoch"]["val_accuracy"]):
        assert 2 < len(part["x"]) <= 800 and part["x"] == sorted(part["x"])
    # the spikes survive thinning: min/max per column, never an average
    assert max(s["batch"]["loss"]["y"]) == pytest.approx(2 / 100_004 ** 0.5 + 5)  # one batch of 50,000
    assert min(s["epoch"]["val_accuracy"]["y"]) == pytest.approx(0.7 + 7 / 1e5)
    assert s["batch"]["loss"]["x"][-1] == 2000.0
    assert took < 2.0, took
    record = db.get("r1")
    assert record["best_val_accuracy"] == pytest.approx(0.9 + 2000 / 1e5)
    assert record["val_accuracy"] == pytest.approx(0.9 + 2000 / 1e5) and record["epochs_done"] == 2000


def test_paging_counting_and_deleting_in_the_database(tmp_path):
    db = RunDB(tmp_path / "runs.sqlite3")
    for i in range(7):
        long_run(db, f"r{i}", epochs=2, batches=10, stored=5, model=f"m{i}")
    assert db.count() == 7
    assert [r["id"] for r in db.list(3, 0)] == ["r6", "r5", "r4"]
    assert [r["id"] for r in db.list(3, 6)] == ["r0"]
    assert db.delete("r3") is True and db.delete("r3") is False
    assert db.count() == 6 and db.events("r3") == []
    db.create("live", "m", "sample", {"epochs": 3})
    assert db.delete("live") is False  # a running run is never deleted


def test_an_older_database_gains_best_and_final_accuracy(tmp_path):
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, model TEXT NOT NULL, dataset TEXT NOT NULL, config TEXT NOT NULL,
            state TEXT NOT NULL, error TEXT, created REAL NOT NULL, ended REAL, epochs_done INTEGER NOT NULL DEFAULT 0,
            test_accuracy REAL, seconds REAL, provenance TEXT);
        CREATE TABLE events (run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
            type TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq));
    """)
    conn.execute("INSERT INTO runs VALUES ('old', 'm', 'sample', '{}', 'finished', NULL, 1, 2, 3, 0.8, 1.0, NULL)")
    for seq, acc in enumerate([0.7, 0.9, 0.8]):
        conn.execute("INSERT INTO events VALUES ('old', ?, 'epoch.end', ?)",
                     (seq, json.dumps({"type": "epoch.end", "epoch": seq + 1, "val_accuracy": acc})))
    conn.execute("INSERT INTO events VALUES ('old', 9, 'batch.end', ?)", ('{"type": "batch.end", "loss": NaN}',))
    conn.commit()
    conn.close()
    record = RunDB(path).get("old")
    assert record["best_val_accuracy"] == 0.9 and record["val_accuracy"] == 0.8 and record["duration"] == 1.0


# ---- the routes, on a real server ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_home):
    with serving(tmp_path_factory.mktemp("hist"), models_from=trained_home) as srv:
        for lr in (0.004, 0.001):
            run = srv.client.post("/api/runs", json={"epochs": 2, "batch_size": 512, "learning_rate": lr}).json()["id"]
            srv.wait_run(run)
        yield srv


def test_list_is_paged_newest_first_with_best_and_final_accuracy(server):
    all_runs = server.client.get("/api/runs").json()
    assert all_runs["total"] >= 2 and all_runs["offset"] == 0 and all_runs["limit"] == 100
    created = [r["created"] for r in all_runs["runs"]]
    assert created == sorted(created, reverse=True)
    second = server.client.get("/api/runs", params={"offset": 1, "limit": 1}).json()
    assert [r["id"] for r in second["runs"]] == [all_runs["runs"][1]["id"]] and second["total"] == all_runs["total"]
    r = all_runs["runs"][0]
    assert r["state"] == "finished" and r["epochs_done"] == 2 and 0 < r["duration"] < 120
    epochs = server.client.get(f"/api/runs/{r['id']}").json()["epochs"]
    assert r["best_val_accuracy"] == max(e["val_accuracy"] for e in epochs)
    assert r["val_accuracy"] == epochs[-1]["val_accuracy"]


def test_series_of_a_run(server):
    run = server.client.get("/api/runs").json()["runs"][0]["id"]
    s = server.client.get(f"/api/runs/{run}/series").json()
    assert s["run"] == run and s["state"] == "finished" and s["epochs_stored"] == 2
    assert s["epoch"]["val_accuracy"]["x"] == [1, 2]
    batches = s["batch"]["loss"]["x"]
    assert len(batches) == s["batches_stored"] >= 2  # fewer than `points`: all of them, unthinned
    assert batches == sorted(batches) and batches[-1] == 2.0  # x = epoch - 1 + batch / batches, the last batch kept
    few = server.client.get(f"/api/runs/{run}/series", params={"points": 10}).json()
    assert len(few["batch"]["loss"]["x"]) <= 10


@pytest.mark.parametrize("path, params", [
    ("/api/runs", {"limit": 0}), ("/api/runs", {"limit": 501}), ("/api/runs", {"offset": -1}),
    ("/api/runs", {"offset": "x"}), ("/api/runs/RUN/series", {"points": 9}), ("/api/runs/RUN/series", {"points": 10**6}),
])
def test_bad_paging_and_points_get_a_one_line_422(server, path, params):
    run = server.client.get("/api/runs").json()["runs"][0]["id"]
    r = server.client.get(path.replace("RUN", run), params=params)
    assert r.status_code == 422 and set(r.json()) == {"error"} and "\n" not in r.json()["error"]


def test_unknown_runs_are_404(server):
    for r in (server.client.get("/api/runs/nope/series"), server.client.delete("/api/runs/nope")):
        assert r.status_code == 404 and r.json() == {"error": "no run 'nope'"}


def test_delete_forgets_the_run_but_keeps_its_model(server):
    run = server.client.post("/api/runs", json={"epochs": 200, "batch_size": 64}).json()
    try:
        busy = server.client.delete(f"/api/runs/{run['id']}")
        assert busy.status_code == 409 and "cancel it first" in busy.json()["error"]
    finally:
        server.client.post(f"/api/runs/{run['id']}/cancel")
        record = server.wait_run(run["id"])
    assert record["state"] == "cancelled"
    total = server.client.get("/api/runs").json()["total"]
    r = server.client.delete(f"/api/runs/{run['id']}")
    assert r.status_code == 200 and r.json() == {"id": run["id"], "deleted": True}
    assert server.client.get(f"/api/runs/{run['id']}").status_code == 404
    assert server.client.get("/api/runs").json()["total"] == total - 1
    if record["epochs_done"]:  # the model of its finished epochs stays
        assert server.client.get(f"/api/models/{run['model']}").status_code == 200


def test_delete_from_another_origin_is_refused(server):
    run = server.client.get("/api/runs").json()["runs"][0]["id"]
    r = server.client.delete(f"/api/runs/{run}", headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert server.client.get(f"/api/runs/{run}").status_code == 200
