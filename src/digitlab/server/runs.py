"""The run manager: starts runs on the worker, persists their events, fans them out to subscribers.

Worker messages arrive on the supervisor's reader thread, are written to SQLite there, and are
then handed to the event loop, which pushes them to every subscriber's bounded queue. A slow
subscriber loses batch events (never epoch or end events) and never slows training down.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import uuid

from ..worker import WorkerSupervisor
from ..worker import protocol as P
from .db import RunDB

DB_BATCHES_PER_EPOCH = 100  # batch events kept per epoch in the history (the rest are live only)


class Busy(Exception):
    """Another run is training."""


class Subscriber:
    """One listener's queue: batch events beyond `limit` waiting are dropped, others always kept.

    Items are (seq, type, text): each event is serialised once, whatever the number of listeners.
    """

    def __init__(self, limit: int = 256):
        self.limit = limit
        self.items: collections.deque[tuple[int, str, str]] = collections.deque()
        self.ready = asyncio.Event()

    def push(self, seq: int, kind: str, text: str) -> None:
        if kind == "batch.end" and len(self.items) >= self.limit:
            return
        self.items.append((seq, kind, text))
        self.ready.set()

    async def get(self) -> tuple[int, str, str]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


class RunManager:
    def __init__(self, home, db: RunDB, loop: asyncio.AbstractEventLoop, threads: int = 0):
        self.db, self.loop = db, loop
        self.subscribers: dict[str, set[Subscriber]] = collections.defaultdict(set)
        self._seq: dict[str, int] = {}
        self._batches: dict[str, int] = {}
        self._lock = threading.Lock()
        self.active: str | None = None
        db.mark_interrupted()
        self.supervisor = WorkerSupervisor(str(home), self._on_worker_event, threads=threads)

    def start(self, job: P.TrainJob) -> str:
        """Create a run record and hand the job to the worker; raises Busy while one trains."""
        with self._lock:
            if self.active is not None:
                raise Busy(f"run {self.active} is still training; cancel it or wait")
            run = uuid.uuid4().hex[:12]
            config = {**job.config.to_dict(), "resume": job.resume, "with_drawings": job.with_drawings}
            self.db.create(run, job.name, job.dataset_name or job.dataset, config)
            self._seq[run] = 0
            try:
                self.supervisor.start(run, job)
            except RuntimeError as exc:
                self.db.finish(run, "failed", str(exc))
                raise
            self.active = run
        return run

    def cancel(self, run: str) -> bool:
        """Ask the worker to stop `run` at its next batch; False if it is not training."""
        with self._lock:
            if self.active != run:
                return False
        self.supervisor.cancel(run)
        return True

    def _on_worker_event(self, message: P.RunEvent) -> None:
        """Reader thread: persist, update state, then publish on the event loop."""
        kind, run, msg = message.type, message.run, message.to_dict()
        with self._lock:
            seq = self._seq.get(run, 0)
            self._seq[run] = seq + 1
        if kind == "run.started":
            self._batches[run] = msg["batches"]
            if msg.get("provenance"):
                self.db.set_provenance(run, msg["provenance"])
        store = True
        if kind == "batch.end":
            stride = max(1, self._batches.get(run, 1) // DB_BATCHES_PER_EPOCH)
            store = msg["batch"] % stride == 0 or msg["batch"] == msg["batches"]
        try:
            if store:
                self.db.add_event(run, seq, msg)
            if kind in P.END_EVENTS:
                state = {"run.finished": "finished", "run.failed": "failed", "run.cancelled": "cancelled"}[kind]
                self.db.finish(run, state, msg.get("error"), msg.get("seconds"), msg.get("test_accuracy"))
        finally:
            if kind in P.END_EVENTS:
                with self._lock:
                    if self.active == run:
                        self.active = None
                self._batches.pop(run, None)
            try:
                self.loop.call_soon_threadsafe(self._publish, run, seq, msg)
            except RuntimeError:  # loop closed during shutdown
                pass

    def _publish(self, run: str, seq: int, msg: dict) -> None:
        subs = self.subscribers.get(run)
        if subs:
            text = json.dumps(msg)
            for sub in list(subs):
                sub.push(seq, msg["type"], text)

    def subscribe(self, run: str, limit: int = 256) -> Subscriber:
        sub = Subscriber(limit)
        self.subscribers[run].add(sub)
        return sub

    def unsubscribe(self, run: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(run)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                self.subscribers.pop(run, None)

    def close(self) -> None:
        self.supervisor.close()
