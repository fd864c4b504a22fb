"""Server-side handle on the worker process: spawn, send, receive on a thread, notice deaths.

Every RunEvent from the worker, and a synthetic run.failed when the process dies mid-run, goes
to `on_event` from the supervisor's reader thread (never from the server's event loop).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from typing import Callable

from . import protocol as P
from .process import main as worker_main


def describe_exit(code: int | None) -> str:
    if code is None:
        return "worker process stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed, possibly out of memory)" if -code == signal.SIGKILL else ""
        return f"worker process died: {name}{hint}"
    return f"worker process exited with code {code}"


class WorkerSupervisor:
    """Keeps one worker process alive (respawned after a death) and runs one job at a time on it."""

    def __init__(self, home: str, on_event: Callable[[P.RunEvent], None], threads: int = 0):
        self.home, self.on_event, self.threads = home, on_event, threads
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self.current_run: str | None = None
        self.process = None
        self._conn = None
        self._closing = False
        self._quick_deaths = 0
        self.architectures: dict = {}  # name -> layer table, as the worker (which has torch) reports them
        self.ready = threading.Event()
        self._spawn()

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=worker_main, args=(child, self.home, self.threads),
                                 name="digitlab-train-worker", daemon=True)
        proc.start()
        child.close()
        self.process, self._conn = proc, parent
        threading.Thread(target=self._read, args=(proc, parent), name="worker-reader", daemon=True).start()

    def _read(self, proc, conn) -> None:
        started = time.monotonic()
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(msg, P.Ready):
                self.architectures = msg.architectures
                self.ready.set()
                continue
            if msg.type in P.END_EVENTS:
                with self._lock:
                    if self.current_run == msg.run:
                        self.current_run = None
            self.on_event(msg)
        proc.join(timeout=5)
        with self._lock:
            run, self.current_run = self.current_run, None
            closing = self._closing
        if run is not None:
            self.on_event(P.failed(run, describe_exit(proc.exitcode)))
        if closing:
            return
        # a worker that dies as soon as it starts (a broken install) is respawned ever more slowly
        self._quick_deaths = self._quick_deaths + 1 if time.monotonic() - started < 10 else 0
        if self._quick_deaths:
            time.sleep(min(30.0, 0.5 * 2 ** self._quick_deaths))
        with self._lock:
            if self.process is proc and not self._closing:
                self._spawn()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, run: str, job: P.TrainJob) -> None:
        with self._lock:
            if self.current_run is not None:
                raise RuntimeError(f"run {self.current_run} is still training")
            try:
                self._conn.send(P.StartRun(run, job))
            except (OSError, ValueError):
                raise RuntimeError("the training worker is restarting; try again in a moment") from None
            self.current_run = run

    def cancel(self, run: str) -> None:
        with self._lock:
            if self.current_run == run:
                self._conn.send(P.CancelRun(run))

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closing = True
            try:
                self._conn.send(P.Stop())
            except (OSError, ValueError):
                pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
