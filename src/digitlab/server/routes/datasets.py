"""The datasets this server offers: sizes, class balance, example images."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query

from ...data import DatasetError
from ..state import State, state_of

router = APIRouter(prefix="/api/datasets")


@router.get("")
def datasets(state: State = Depends(state_of)):
    out = []
    for name in state.dataset_names():
        entry = {"name": name, "available": state.available(name), "default": name == state.default_dataset}
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
