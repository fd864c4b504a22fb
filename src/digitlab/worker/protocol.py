"""The wire protocol between the server and the training worker process.

Messages are plain dicts with a `type`, sent over a multiprocessing Pipe (pickled by the stdlib
between our own two processes only; nothing from users or disk is ever unpickled).

server -> worker
    {"type": "start", "run": ID, "params": {dataset, epochs, batch_size, learning_rate, seed, name, resume}}
    {"type": "cancel", "run": ID}
    {"type": "stop"}                      # finish the current run's batch, then exit
worker -> server
    {"type": "ready", "pid": PID}
    {"type": "run.started", "run": ID, epochs, batches, train_size, test_size, device, model}
    {"type": "batch.end", "run": ID, epoch, batch, batches, loss, accuracy, images_per_s, elapsed}
    {"type": "epoch.end", "run": ID, epoch, epochs, loss, accuracy, val_loss, val_accuracy, ..., model}
    {"type": "run.finished" | "run.cancelled", "run": ID, model, epochs_done, test_accuracy, seconds}
    {"type": "run.failed", "run": ID, "error": ONE_LINE}
Errors cross the boundary as `run.failed` with a message, never as silence; if the worker
process itself dies, the server's supervisor emits `run.failed` with the exit reason.
"""

START, CANCEL, STOP, READY = "start", "cancel", "stop", "ready"
RUN_STARTED, BATCH_END, EPOCH_END = "run.started", "batch.end", "epoch.end"
RUN_FINISHED, RUN_FAILED, RUN_CANCELLED = "run.finished", "run.failed", "run.cancelled"
END_EVENTS = frozenset({RUN_FINISHED, RUN_FAILED, RUN_CANCELLED})


def one_line(exc: BaseException) -> str:
    """An exception as one readable line: `Type: message` for unexpected ones, just the message for ours."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    ours = type(exc).__module__.startswith("digitlab")
    return text if ours else f"{type(exc).__name__}: {text}"
