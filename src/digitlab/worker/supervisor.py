"""Server-side handle on the worker process: spawn, send, receive on a thread, notice deaths.

Every message from the worker, and a synthetic `run.failed` when the process dies mid-run, goes
to `on_message` from the supervisor's reader thread (never from the server's event loop).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
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

    def __init__(self, home: str, on_message: Callable[[dict], None], threads: int = 0):
        self.home, self.on_message, self.threads = home, on_message, threads
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self.current_run: str | None = None
        self.process = None
        self._conn = None
        self._closing = False
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
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg.get("type") in P.END_EVENTS:
                with self._lock:
                    if self.current_run == msg.get("run"):
                        self.current_run = None
            self.on_message(msg)
        proc.join(timeout=5)
        with self._lock:
            run, self.current_run = self.current_run, None
            closing = self._closing
        if run is not None:
            self.on_message({"type": P.RUN_FAILED, "run": run, "error": describe_exit(proc.exitcode)})
        if not closing:
            with self._lock:
                if self.process is proc:
                    self._spawn()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, run: str, params: dict) -> None:
        with self._lock:
            if self.current_run is not None:
                raise RuntimeError(f"run {self.current_run} is still training")
            try:
                self._conn.send({"type": P.START, "run": run, "params": params})
            except (OSError, ValueError):
                raise RuntimeError("the training worker is restarting; try again in a moment") from None
            self.current_run = run

    def cancel(self, run: str) -> None:
        with self._lock:
            if self.current_run == run:
                self._conn.send({"type": P.CANCEL, "run": run})

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closing = True
            try:
                self._conn.send({"type": P.STOP})
            except (OSError, ValueError):
                pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
