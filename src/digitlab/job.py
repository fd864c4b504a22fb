"""A training job: dataset + model (new or resumed) + fit + model store, shared by the CLI and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .data import load_dataset
from .models import ModelStore, build, layer_table
from .models.export import onnx_bytes
from .provenance import describe_run
from .training import EpochEnd, Event, FitResult, RunStarted, TrainConfig, fit


@dataclass
class JobResult:
    name: str | None  # None when cancelled before the first epoch finished (nothing saved)
    fit: FitResult
    record: dict | None


def train_model(home: Path, dataset: str = "sample", config: TrainConfig | None = None,
                name: str | None = None, resume: str | None = None,
                callbacks: Iterable[Callable[[Event], None]] = (), cancel=None,
                save_every_epoch: bool = False, progress: bool = False,
                on_saved: Callable[[str, dict], None] | None = None, force: bool = False) -> JobResult:
    """Train a new model (or continue `resume`) on `dataset` and save it under `name`.

    An existing model `name` is never replaced unless it is the one resumed, or `force` says so.

    With `save_every_epoch`, the weights and the ONNX export are saved after each epoch, so a
    crash or a cancel keeps the last finished epoch and the page can use the model mid-run.
    """
    config = config or TrainConfig()
    store = ModelStore(home)
    store.ensure_writable()
    ds = load_dataset(dataset, home=home, progress=progress)
    config.validate(len(ds.train_labels))
    if resume:
        resume = store.resolve(resume)
        model, previous = store.load(resume)
        name = name or previous["name"]
        history = list(previous.get("history", []))
        created = previous.get("created")
        architecture = previous["architecture"]
    else:
        architecture = config.architecture
        with torch.random.fork_rng(devices=[]):  # the seed decides the initial weights too
            torch.manual_seed(config.seed)
            model = build(architecture)
        history, created = [], None
    name = store.new_name(ds.name) if name is None else name
    store.check_free(name, resume, force)  # validates the name before any training time is spent
    offset = len(history)
    state = {"record": None, "provenance": None}
    summary = layer_table(model)

    def record_for(epochs: list[dict]) -> dict:
        last = epochs[-1] if epochs else {}
        rec = {"architecture": architecture, "dataset": ds.spec, "dataset_name": ds.name, "classes": list(ds.classes),
               "config": (state["provenance"] or {}).get("config", config.to_dict()), "history": epochs, "epochs": len(epochs),
               "test_accuracy": last.get("val_accuracy"), "test_loss": last.get("val_loss"), "summary": summary,
               "provenance": state["provenance"]}
        if created:
            rec["created"] = created
        return rec

    def save() -> None:
        if state["record"] is None:  # first save: someone may have taken the name meanwhile
            store.check_free(name, resume, force)
        rec = store.save(name, model, record_for(history), onnx=onnx_bytes(model))
        state["record"] = rec
        if on_saved:
            on_saved(name, rec)

    def on_event(event: Event) -> None:
        if isinstance(event, RunStarted):
            state["provenance"] = describe_run(config.to_dict(), ds, event.path, event.threads, event.device)
            if resume:
                state["provenance"]["resumed"] = resume
            event.provenance = state["provenance"]  # callbacks after this one (the worker) see it
        elif isinstance(event, EpochEnd):
            row = event.to_dict()
            row["epoch"] += offset
            row.pop("type")
            history.append(row)
            if save_every_epoch:
                save()

    result = fit(model, ds, config, callbacks=[on_event, *callbacks], cancel=cancel)
    if result.epochs_done and not save_every_epoch:
        save()
    if not result.epochs_done:
        return JobResult(None, result, None)
    return JobResult(name, result, state["record"])
