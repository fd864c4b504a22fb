"""The training worker: a separate, lower-priority OS process that runs one training job at a time.

Started with the `spawn` method, so it shares nothing with the server but the pipe. A reader
thread turns `CancelRun` messages into a threading.Event that fit() checks before every batch,
and exits the process the moment the server's end of the pipe closes.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import replace
from pathlib import Path

from . import protocol as P

NICE = 10  # where SCHED_IDLE is not available


def main(conn, home: str, threads: int = 0) -> None:
    """Entry point of the worker process (`multiprocessing` target); `threads`: cores to train on, 0 = all."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping, not spinning, OpenMP threads
    yield_cpu()
    Worker(conn, Path(home), threads).serve()


def yield_cpu() -> str:
    """Make this process give way to everything interactive; returns the policy it got.

    On Linux, SCHED_IDLE: the scheduler runs its threads only when a core would otherwise idle,
    so the server, the browser and the desktop always go first, and training still has every
    idle cycle. Set before any thread starts, so all of them (torch's, the batch shards) inherit
    it. Elsewhere, a nice value.
    """
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:
            pass
    try:
        os.nice(NICE)
        return f"nice {NICE}"
    except OSError:
        return "normal"


class Worker:
    """Receives StartRun/CancelRun/Stop, trains one job at a time, sends RunEvents back."""

    def __init__(self, conn, home: Path, threads: int):
        self.conn, self.home, self.threads = conn, home, threads
        self.inbox: "queue.Queue[P.StartRun | None]" = queue.Queue()
        self.cancel = threading.Event()
        self.current: str | None = None
        self.cancelled: set[str] = set()  # cancels that arrive before their run starts
        self._lock = threading.Lock()

    def serve(self) -> None:
        threading.Thread(target=self._read, name="worker-inbox", daemon=True).start()
        self.conn.send(P.Ready(os.getpid(), self._architectures()))
        while (msg := self.inbox.get()) is not None:
            self._train(msg)

    @staticmethod
    def _architectures() -> dict:
        from ..models import ARCHITECTURES, build, layer_table
        return {name: layer_table(build(name)) for name in ARCHITECTURES}

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                # The server is gone (killed: a graceful stop sends Stop first). Nobody can see
                # this run any more, and a new server may already own the home: exit now, before
                # another byte reaches the model store. Saves are atomic, so none is left half-done.
                os._exit(0)
            if isinstance(msg, P.CancelRun):
                with self._lock:
                    self.cancelled.add(msg.run)
                    if msg.run == self.current:
                        self.cancel.set()
            elif isinstance(msg, P.Stop):
                self.cancel.set()
                self.inbox.put(None)
                return
            elif isinstance(msg, P.StartRun):
                self.inbox.put(msg)

    def _train(self, msg: P.StartRun) -> None:
        from ..job import train_model
        from ..training import Event, RunCancelled, RunFinished, RunStarted
        from ..training.events import BatchThrottle

        run, job = msg.run, msg.job
        with self._lock:
            self.current = run
            self.cancel.clear()
            if run in self.cancelled:
                self.cancel.set()
        model = {"name": job.name}
        passes = BatchThrottle()

        def send(event: Event) -> None:
            if not passes(event):
                return
            named = isinstance(event, RunStarted) or event.type == "epoch.end"
            self.conn.send(P.RunEvent(run, event, model["name"] if named else None))

        try:
            config = replace(job.config, threads=self.threads)
            result = train_model(self.home, job.dataset, config, name=job.name, resume=job.resume,
                                 callbacks=[send], cancel=self.cancel, save_every_epoch=True,
                                 on_saved=lambda name, record: model.update(name=name),
                                 with_drawings=job.with_drawings)
            last = result.fit.history[-1] if result.fit.history else None
            end = RunCancelled if result.fit.cancelled else RunFinished
            send(end(result.fit.epochs_done, last.val_accuracy if last else None,
                     last.val_loss if last else None, result.fit.seconds, result.name))
        except Exception as exc:  # noqa: BLE001 - every failure becomes run.failed, with its message
            self.conn.send(P.failed(run, P.one_line(exc), model["name"]))
        finally:
            with self._lock:
                self.current = None
                self.cancelled.discard(run)
