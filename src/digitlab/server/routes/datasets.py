"""The datasets this server offers: sizes, class balance, example images, and downloading the remote ones."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query

from ...data import DatasetError
from ...data.datasets import REMOTES
from ..downloads import DownloadRefused, size_of
from ..state import State, state_of

router = APIRouter(prefix="/api/datasets")


@router.get("")
def datasets(state: State = Depends(state_of)):
    out = []
    for name in state.dataset_names():
        entry = {"name": name, "available": state.available(name), "default": name == state.default_dataset,
                 "downloadable": name in REMOTES, "download_size": size_of(name) if name in REMOTES else None}
        if entry["available"]:
            try:
                entry.update(state.dataset(name).describe())
                entry["name"] = name
            except DatasetError as exc:
                entry.update(available=False, error=str(exc))
        out.append(entry)
    return {"datasets": out}


@router.get("/{name}/examples")
def examples(name: str, split: Literal["train", "test"] = "train", count: int = Query(16, ge=1, le=256),
             seed: int = Query(0, ge=0, le=2**31 - 1), state: State = Depends(state_of)):
    if name not in state.dataset_names():
        raise HTTPException(404, f"unknown dataset {name!r}")
    try:
        ds = state.dataset(name)
    except DatasetError as exc:
        raise HTTPException(409, str(exc)) from None
    images, labels = (ds.train_images, ds.train_labels) if split == "train" else (ds.test_images, ds.test_labels)
    idx = np.random.default_rng(seed).choice(len(labels), size=min(count, len(labels)), replace=False)
    return {"dataset": name, "split": split, "classes": list(ds.classes), "examples": [
        {"index": int(i), "label": int(labels[i]), "pixels": base64.b64encode(images[i].tobytes()).decode()}
        for i in idx]}


def _remote(name: str, state: State) -> str:
    if name not in state.dataset_names():
        raise HTTPException(404, f"unknown dataset {name!r}")
    if name not in REMOTES:
        raise HTTPException(422, f"{name} cannot be downloaded: only {' and '.join(REMOTES)} can")
    return name


@router.get("/{name}/download")
def download_status(name: str, state: State = Depends(state_of)):
    """Where the dataset's download stands: idle, running (file, bytes done of total), finished, failed, cancelled."""
    return state.downloads.status(_remote(name, state))


@router.post("/{name}/download", status_code=202)
def start_download(name: str, state: State = Depends(state_of)):
    """Download and verify the dataset in a background thread (poll GET for progress); 409 if under way or here."""
    try:
        return state.downloads.start(_remote(name, state))
    except DownloadRefused as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/{name}/download/cancel")
def cancel_download(name: str, state: State = Depends(state_of)):
    """Stop the download before its next chunk; the files verified so far stay, no partial one does."""
    if not state.downloads.cancel(_remote(name, state)):
        raise HTTPException(409, f"{name} is not downloading")
    return {"dataset": name, "cancelling": True}
