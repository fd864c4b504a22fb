"""A training job: dataset + model (new or resumed) + fit + model store, shared by the CLI and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .data import DatasetError, load_dataset
from .data.datasets import is_digits
from .models import ModelStore, build, layer_table
from .models.store import class_count
from .models.export import onnx_bytes
from .provenance import describe_run
from .training import EpochEnd, Event, FitResult, RunStarted, TrainConfig, fit
from .training.calibrate import calibrate


@dataclass
class JobResult:
    name: str | None  # None when cancelled before the first epoch finished (nothing saved)
    fit: FitResult
    record: dict | None


def train_model(home: Path, dataset: str = "sample", config: TrainConfig | None = None,
                name: str | None = None, resume: str | None = None,
                callbacks: Iterable[Callable[[Event], None]] = (), cancel=None,
                save_every_epoch: bool = False, progress: bool = False,
                on_saved: Callable[[str, dict], None] | None = None, force: bool = False,
                with_drawings: bool = False, group=None) -> JobResult:
    """Train a new model (or continue `resume`) on `dataset` and save it under `name`.

    An existing model `name` is never replaced unless it is the one resumed, or `force` says so.

    With `save_every_epoch`, the weights and the ONNX export are saved after each epoch, so a
    crash or a cancel keeps the last finished epoch and the page can use the model mid-run.

    `with_drawings` mixes the user's taught drawings into the training split (digitlab.teach) and
    records the accuracy on the held-out drawings and the test split before and after.

    `group`: this process's training.distributed.Group in a torchrun run; every process trains,
    only rank 0 saves (and only once fit() returns: every step then had every process's gradients).
    """
    saving = group is None or group.rank == 0
    config = config or TrainConfig()
    store = ModelStore(home)
    store.ensure_writable()
    ds = load_dataset(dataset, home=home, progress=progress)
    teaching = None
    if with_drawings:
        if not is_digits(ds):
            raise DatasetError(f"with_drawings: the taught drawings are digits, but {ds.name} has other classes "
                               f"({', '.join(ds.classes[:4])}...)")
        from .teach import Teaching
        teaching = Teaching.load(home, ds)
        ds = teaching.dataset
    config.validate(len(ds.train_labels))
    if resume:
        resume = store.resolve(resume)
        model, previous = store.load(resume)
        name = name or previous["name"]
        history = list(previous.get("history", []))
        created = previous.get("created")
        architecture = previous["architecture"]
        if class_count(previous) != len(ds.classes):
            raise DatasetError(f"model {resume!r} has {class_count(previous)} classes, dataset {ds.name} "
                               f"has {len(ds.classes)}: resume it on a dataset of the same classes")
    else:
        architecture = config.architecture
        with torch.random.fork_rng(devices=[]):  # the seed decides the initial weights too
            torch.manual_seed(config.seed)
            model = build(architecture, classes=len(ds.classes))
        history, created = [], None
    name = store.new_name(ds.name) if name is None else name
    if saving:
        store.check_free(name, resume, force)  # validates the name before any training time is spent
    offset = len(history)
    state = {"record": None, "provenance": None, "calibration": None}
    summary = layer_table(model)

    def record_for(epochs: list[dict]) -> dict:
        last = epochs[-1] if epochs else {}
        rec = {"architecture": architecture, "dataset": ds.spec, "dataset_name": ds.name, "classes": list(ds.classes),
               "config": (state["provenance"] or {}).get("config", config.to_dict()), "history": epochs, "epochs": len(epochs),
               "test_accuracy": last.get("val_accuracy"), "test_loss": last.get("val_loss"), "summary": summary,
               "provenance": state["provenance"], "calibration": state["calibration"]}
        if created:
            rec["created"] = created
        if teaching:
            rec["drawings"] = teaching.summary()
        return rec

    def save() -> None:
        if state["record"] is None:  # first save: someone may have taken the name meanwhile
            store.check_free(name, resume, force)
        # a temperature and "sure" thresholds for this version (inference/confidence.py), baked into the ONNX
        state["calibration"] = calibrate(model, ds)
        rec = store.save(name, model, record_for(history),
                         onnx=onnx_bytes(model, state["calibration"]["temperature"]))
        state["record"] = rec
        if on_saved:
            on_saved(name, rec)

    def on_event(event: Event) -> None:
        if isinstance(event, RunStarted):
            state["provenance"] = describe_run(config.to_dict(), ds, event.path, event.threads, event.device)
            if resume:
                state["provenance"]["resumed"] = resume
            if event.processes > 1:
                state["provenance"]["processes"] = event.processes
            if teaching:
                state["provenance"]["drawings"] = teaching.summary()
            event.provenance = state["provenance"]  # callbacks after this one (the worker) see it
        elif isinstance(event, EpochEnd):
            row = event.to_dict()
            row["epoch"] += offset
            row.pop("type")
            history.append(row)
            if teaching:
                teaching.after = teaching.measure(model, event.val_accuracy)
            if save_every_epoch and saving:
                save()

    if teaching and resume:
        teaching.before = teaching.measure(model)
    result = fit(model, ds, config, callbacks=[on_event, *callbacks], cancel=cancel, group=group)
    if result.epochs_done and not save_every_epoch and saving:
        save()
    if not result.epochs_done:
        return JobResult(None, result, None)
    return JobResult(name, result, state["record"])
