"""The training worker: a separate, lower-priority OS process that runs one training job at a time.

Started with the `spawn` method, so it shares nothing with the server but the pipe. A reader
thread turns `cancel` messages into a threading.Event that fit() checks before every batch.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

from . import protocol as P

NICE = 10
#: Batch events are sent at most this often (plus each epoch's last batch): the page paints at
#: 60 fps at best, and every event is fanned out to every subscriber.
BATCH_EVENT_INTERVAL = 1 / 50


def main(conn, home: str, threads: int = 0) -> None:
    """Entry point of the worker process (`multiprocessing` target); `threads`: cores to train on, 0 = all."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping, not spinning, OpenMP threads
    try:
        os.nice(NICE)
    except OSError:
        pass
    from ..job import train_model
    from ..training import Event, TrainConfig

    inbox: "queue.Queue[dict | None]" = queue.Queue()
    cancel = threading.Event()
    current = {"run": None}
    cancelled: set[str] = set()  # cancels that may arrive before their run starts

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = {"type": P.STOP}
            if msg["type"] == P.CANCEL:
                cancelled.add(msg.get("run"))
                if msg.get("run") == current["run"]:
                    cancel.set()
            elif msg["type"] == P.STOP:
                cancel.set()
                inbox.put(None)
                return
            else:
                inbox.put(msg)

    threading.Thread(target=read, name="worker-inbox", daemon=True).start()
    conn.send({"type": P.READY, "pid": os.getpid()})

    while (msg := inbox.get()) is not None:
        run, params = msg["run"], msg["params"]
        current["run"] = run
        cancel.clear()
        if run in cancelled:
            cancel.set()
        state = {"model": None, "last_batch": 0.0}

        def send(event: Event | dict) -> None:
            if getattr(event, "type", None) == P.BATCH_END and event.batch != event.batches:
                now = time.monotonic()
                if now - state["last_batch"] < BATCH_EVENT_INTERVAL:
                    return
                state["last_batch"] = now
            data = event.to_dict() if isinstance(event, Event) else event
            data["run"] = run
            if data["type"] in (P.RUN_STARTED, P.EPOCH_END):
                data["model"] = state["model"]
            conn.send(data)

        def saved(name: str, record: dict) -> None:
            state["model"] = name

        try:
            config = TrainConfig(epochs=params["epochs"], batch_size=params["batch_size"],
                                 learning_rate=params["learning_rate"], seed=params["seed"], threads=threads)
            state["model"] = params.get("name")
            result = train_model(Path(home), params["dataset"], config, name=params.get("name"),
                                 resume=params.get("resume"), callbacks=[send], cancel=cancel,
                                 save_every_epoch=True, on_saved=saved)
            last = result.fit.history[-1] if result.fit.history else None
            send({"type": P.RUN_CANCELLED if result.fit.cancelled else P.RUN_FINISHED,
                  "model": result.name, "epochs_done": result.fit.epochs_done,
                  "test_accuracy": last.val_accuracy if last else None,
                  "test_loss": last.val_loss if last else None, "seconds": result.fit.seconds})
        except Exception as exc:  # noqa: BLE001 - every failure becomes run.failed, with its message
            send({"type": P.RUN_FAILED, "error": P.one_line(exc), "model": state["model"]})
        finally:
            current["run"] = None
            cancelled.discard(run)
