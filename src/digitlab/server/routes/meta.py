"""Health, the registered architectures, and the training config's fields (for the page's form)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...training.config import api_fields
from ..state import State, state_of

router = APIRouter(prefix="/api")


@router.get("/health")
def health():
    return {"status": "ok", "version": __version__}


@router.get("/train-config")
def train_config():
    """Each hyperparameter a run takes: name, type, default, limits and help (from TrainConfig)."""
    return {"fields": api_fields()}


@router.get("/architectures")
async def architectures(state: State = Depends(state_of)):
    """The registered architectures with their Keras-style layer tables and parameter counts."""
    tables = await run_in_threadpool(state.architectures)
    return {"architectures": [{"name": name, "layers": rows, "total_params": sum(r["params"] for r in rows)}
                              for name, rows in tables.items()]}


@router.get("/architectures/{name}/summary")
async def architecture_summary(name: str, state: State = Depends(state_of)):
    tables = await run_in_threadpool(state.architectures)
    if name not in tables:
        raise HTTPException(404, f"unknown architecture {name!r}; known: {', '.join(tables)}")
    rows = tables[name]
    return {"model": None, "architecture": name, "layers": rows, "total_params": sum(r["params"] for r in rows)}
