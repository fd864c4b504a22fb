"""Run history in SQLite (WAL): runs with their config and outcome, and each run's events."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from .series import thin

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
    provenance TEXT,               -- JSON: see digitlab.provenance.describe_run
    val_accuracy REAL,             -- the last epoch's
    best_val_accuracy REAL         -- the best epoch's
);
CREATE TABLE IF NOT EXISTS events (
    run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS drawings (  -- the user's taught drawings; pixels: HOME/drawings/KEY.idx and KEY.png
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a deleted drawing's id names nothing else
    key TEXT NOT NULL UNIQUE,
    label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    model TEXT,                    -- the model in use when it was taught
    predicted INTEGER,             -- what that model read
    sha256 TEXT NOT NULL,          -- of the 784 input bytes: a changed file is reported, never trained on
    created REAL NOT NULL
);
"""


class RunDB:
    """A thread-safe wrapper over one SQLite connection (writes are short; WAL lets reads overlap)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
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
            if "best_val_accuracy" not in columns:  # from before the history card: computed once from the events
                self._conn.execute("ALTER TABLE runs ADD COLUMN val_accuracy REAL")
                self._conn.execute("ALTER TABLE runs ADD COLUMN best_val_accuracy REAL")
                self._conn.execute(
                    "UPDATE runs SET "
                    "best_val_accuracy=(SELECT MAX(json_extract(data, '$.val_accuracy')) FROM events "
                    "  WHERE run=runs.id AND type='epoch.end' AND json_valid(data)), "
                    "val_accuracy=(SELECT json_extract(data, '$.val_accuracy') FROM events "
                    "  WHERE run=runs.id AND type='epoch.end' AND json_valid(data) ORDER BY seq DESC LIMIT 1)")

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
                acc = event["val_accuracy"]
                self._conn.execute(
                    "UPDATE runs SET epochs_done=?, test_accuracy=?, val_accuracy=?, "
                    "best_val_accuracy=CASE WHEN best_val_accuracy >= ? THEN best_val_accuracy ELSE ? END WHERE id=?",
                    (event["epoch"], acc, acc, acc, acc, run))

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
        # wall-clock seconds from start to end (or to now, while it runs)
        out["duration"] = round((out["ended"] or time.time()) - out["created"], 3)
        return out

    def get_state(self, run: str) -> str | None:
        """The run's state (running, finished, ...), or None if there is no such run."""
        with self._lock:
            row = self._conn.execute("SELECT state FROM runs WHERE id=?", (run,)).fetchone()
        return row[0] if row else None

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

    def list(self, limit: int = 100, offset: int = 0) -> list[dict]:
        """Runs newest first, `limit` of them from `offset`."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM runs ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                                      (limit, offset)).fetchall()
        return [self._run_dict(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def delete(self, run: str) -> bool:
        """Remove a run's record and events (never its model); False if there is none or it is running."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM runs WHERE id=? AND state != 'running'", (run,))
            return cur.rowcount > 0

    def series(self, run: str, points: int = 1000) -> dict:
        """The run's curves for a chart, each thinned to at most `points` (min/max per column).

        batch: loss and accuracy against x = epoch - 1 + batch / batches (the batches stored: up to
        100 an epoch); epoch: training and validation loss and accuracy against the epoch number.
        """
        # its own connection: a long run's thousands of events are read (WAL) while the run manager writes
        with contextlib.closing(sqlite3.connect(str(self._path), timeout=10)) as conn:
            batches = conn.execute(
                "SELECT json_extract(data, '$.epoch') - 1.0 + json_extract(data, '$.batch') * 1.0"
                " / json_extract(data, '$.batches'), json_extract(data, '$.loss'), json_extract(data, '$.accuracy')"
                " FROM events WHERE run=? AND type='batch.end' AND json_valid(data) ORDER BY seq", (run,)).fetchall()
            epochs = conn.execute(
                "SELECT json_extract(data, '$.epoch'), json_extract(data, '$.loss'), json_extract(data, '$.accuracy'),"
                " json_extract(data, '$.val_loss'), json_extract(data, '$.val_accuracy')"
                " FROM events WHERE run=? AND type='epoch.end' AND json_valid(data) ORDER BY seq", (run,)).fetchall()

        def column(rows, i):
            return [r[i] for r in rows]

        def pair(rows, i):
            kept = [r for r in rows if r[0] is not None and r[i] is not None]
            x, y = thin(column(kept, 0), column(kept, i), points)
            return {"x": x, "y": y}

        return {
            "run": run, "points": points, "batches_stored": len(batches), "epochs_stored": len(epochs),
            "batch": {"loss": pair(batches, 1), "accuracy": pair(batches, 2)},
            "epoch": {"loss": pair(epochs, 1), "accuracy": pair(epochs, 2),
                      "val_loss": pair(epochs, 3), "val_accuracy": pair(epochs, 4)},
        }

    # ---- the user's taught drawings (digitlab.data.drawings.DrawingStore keeps their files) ----
    def add_drawing(self, key: str, label: int, model: str | None, predicted: int | None, sha256: str) -> dict:
        """List a drawing whose files are written (this insert is its commit point); returns its row."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO drawings (key, label, model, predicted, sha256, created) VALUES (?,?,?,?,?,?)",
                (key, label, model, predicted, sha256, time.time()))
            row = self._conn.execute("SELECT * FROM drawings WHERE id=?", (cur.lastrowid,)).fetchone()
        return dict(row)

    def drawings(self) -> list[dict]:
        """Every drawing, oldest first."""
        with self._lock:
            return [dict(r) for r in self._conn.execute("SELECT * FROM drawings ORDER BY id").fetchall()]

    def drawing(self, drawing: int) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM drawings WHERE id=?", (drawing,)).fetchone()
        return dict(row) if row else None

    def delete_drawing(self, drawing: int) -> dict | None:
        """Unlist a drawing (its files go next); returns its row, or None if there was none."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM drawings WHERE id=?", (drawing,)).fetchone()
            if row is None or not self._conn.execute("DELETE FROM drawings WHERE id=?", (drawing,)).rowcount:
                return None  # none, or another process (the CLI) deleted it just now
        return dict(row)
