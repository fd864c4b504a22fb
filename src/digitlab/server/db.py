"""Run history in SQLite (WAL): runs with their config and outcome, and each run's events."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,           -- running, finished, failed, cancelled, interrupted
    error TEXT,
    created REAL NOT NULL,
    ended REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    test_accuracy REAL,
    seconds REAL,
    provenance TEXT                -- JSON: see digitlab.provenance.describe_run
);
CREATE TABLE IF NOT EXISTS events (
    run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
"""


class RunDB:
    """A thread-safe wrapper over one SQLite connection (writes are short; WAL lets reads overlap)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(runs)")}
            if "provenance" not in columns:  # a database from before the column existed
                self._conn.execute("ALTER TABLE runs ADD COLUMN provenance TEXT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def mark_interrupted(self) -> int:
        """Runs left `running` by a server that died are `interrupted` now; returns how many."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE runs SET state='interrupted', error='the server stopped during this run', ended=? "
                "WHERE state = 'running'", (time.time(),))
            return cur.rowcount

    def create(self, run: str, model: str, dataset: str, config: dict) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO runs (id, model, dataset, config, state, created) VALUES (?,?,?,?,?,?)",
                               (run, model, dataset, json.dumps(config), "running", time.time()))

    def set_provenance(self, run: str, provenance: dict) -> None:
        """What made the run (config as used, training path, versions, dataset hash, CPU), once known."""
        with self._lock:
            self._conn.execute("UPDATE runs SET provenance=? WHERE id=?", (json.dumps(provenance), run))

    def add_event(self, run: str, seq: int, event: dict) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO events (run, seq, type, data) VALUES (?,?,?,?)",
                               (run, seq, event["type"], json.dumps(event)))
            if event["type"] == "epoch.end":
                self._conn.execute("UPDATE runs SET epochs_done=?, test_accuracy=? WHERE id=?",
                                   (event["epoch"], event["val_accuracy"], run))

    def finish(self, run: str, state: str, error: str | None = None, seconds: float | None = None,
               test_accuracy: float | None = None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE runs SET state=?, error=?, ended=?, seconds=COALESCE(?, seconds), "
                "test_accuracy=COALESCE(?, test_accuracy) WHERE id=?",
                (state, error, time.time(), seconds, test_accuracy, run))

    def events(self, run: str, after: int = -1) -> list[tuple[int, dict]]:
        with self._lock:
            rows = self._conn.execute("SELECT seq, data FROM events WHERE run=? AND seq>? ORDER BY seq",
                                      (run, after)).fetchall()
        return [(r["seq"], json.loads(r["data"])) for r in rows]

    def _run_dict(self, row) -> dict:
        out = dict(row)
        out["config"] = json.loads(out["config"])
        out["provenance"] = json.loads(out["provenance"]) if out.get("provenance") else None
        return out

    def get(self, run: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM runs WHERE id=?", (run,)).fetchone()
            if row is None:
                return None
            epochs = self._conn.execute("SELECT data FROM events WHERE run=? AND type='epoch.end' ORDER BY seq",
                                        (run,)).fetchall()
        out = self._run_dict(row)
        out["epochs"] = [json.loads(e["data"]) for e in epochs]
        return out

    def list(self, limit: int = 100) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [self._run_dict(r) for r in rows]
