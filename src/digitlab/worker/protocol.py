"""The wire protocol between the server and the training worker process.

Every message is a typed dataclass sent over a multiprocessing Pipe (pickled by the stdlib between
our own two processes only; nothing from users or disk is ever unpickled). A run's id is its
request id: the worker tags every event of a run with it, so the server can never mix two runs.

server -> worker
    StartRun(run, job)     train `job` (a TrainJob: dataset, config, name, resume) as run `run`
    CancelRun(run)         stop `run` at its next batch (ignored if it is not the current one)
    Stop()                 finish the current batch, then exit
worker -> server
    Ready(pid, architectures)   the worker is up; the registered architectures' layer tables
    RunEvent(run, event)        a training event (digitlab.training.events): run.started,
                                batch.end, epoch.end, run.finished / run.cancelled / run.failed
Errors cross the boundary as a RunFailed event with a one-line message, never as silence; if the
worker process itself dies, the server's supervisor emits RunFailed with the exit reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..training.config import TrainConfig
from ..training.events import END_EVENTS, Event, RunFailed

__all__ = ["TrainJob", "StartRun", "CancelRun", "Stop", "Ready", "RunEvent", "END_EVENTS", "one_line", "failed"]


@dataclass(frozen=True)
class TrainJob:
    """What to train: the dataset (what load_dataset takes), the config, and the model's name."""

    dataset: str
    config: TrainConfig
    name: str
    resume: str | None = None
    dataset_name: str = ""  # how the page names the dataset (a folder's API name)
    with_drawings: bool = False  # mix in the user's taught drawings (digitlab.teach)


@dataclass(frozen=True)
class StartRun:
    run: str
    job: TrainJob


@dataclass(frozen=True)
class CancelRun:
    run: str


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    pid: int
    architectures: dict = field(default_factory=dict)  # name -> layer table rows


@dataclass(frozen=True)
class RunEvent:
    run: str
    event: Event
    model: str | None = None  # the model the run saves to, once known (run.started, epoch.end)

    @property
    def type(self) -> str:
        return self.event.type

    def to_dict(self) -> dict:
        """The event as the WebSocket and the run history carry it: `{type, run, ...}`."""
        data = {**self.event.to_dict(), "run": self.run}
        if self.model is not None:
            data["model"] = self.model
        return data


def failed(run: str, error: str, model: str | None = None) -> RunEvent:
    return RunEvent(run, RunFailed(error, model))


def one_line(exc: BaseException) -> str:
    """An exception as one readable line: `Type: message` for unexpected ones, just the message for ours."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    ours = type(exc).__module__.startswith("digitlab")
    return text if ours else f"{type(exc).__name__}: {text}"
