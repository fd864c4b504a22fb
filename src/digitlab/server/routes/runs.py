"""Training runs: start (validated against TrainConfig), list (paged), curves, delete, cancel, live event stream."""

from __future__ import annotations

import json
from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, WebSocketDisconnect
from pydantic import ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool

from ...data import DatasetError
from ...models.store import ModelExists, StoreError, check_name
from ...training.config import ConfigError, TrainConfig, api_fields, draw_seed
from ...worker import protocol as P
from ..runs import Busy
from ..state import State, state_of

router = APIRouter(prefix="/api/runs")


def _field(spec: dict):
    """A pydantic field from a TrainConfig field's spec: same default, limits and help."""
    kind = {"integer": int, "number": float, "string": str}[spec["type"]]
    if "enum" in spec:
        kind = Literal[tuple(spec["enum"])]
    limits = {"ge": spec.get("minimum"), "le": spec.get("maximum"), "gt": spec.get("exclusiveMinimum")}
    help = spec["help"]
    if spec["name"] == "seed":  # null asks for a random seed, drawn here and recorded
        kind, help = Optional[kind], f"{help}; null: a random one, drawn and recorded"
    extra = {"allow_inf_nan": False} if kind is float else {}
    return kind, Field(spec["default"], description=help, **extra, **{k: v for k, v in limits.items() if v is not None})


RunRequest = create_model(
    "RunRequest", __doc__="POST /api/runs: what to train. Out-of-range values get a 422 naming the field.",
    __config__=ConfigDict(extra="forbid"),
    dataset=(str, Field("sample", max_length=200)),
    name=(Optional[str], Field(None, max_length=64, description="the model's name (default: DATASET-DATE-TIME)")),
    resume=(Optional[str], Field(None, max_length=64, description="continue this saved model")),
    with_drawings=(bool, Field(False, description="mix in the drawings taught with POST /api/drawings "
                                                  "(the held-out ones measure before and after)")),
    **{spec["name"]: _field(spec) for spec in api_fields()},
)


@router.post("", status_code=201)
def start_run(req: RunRequest, state: State = Depends(state_of)):
    if req.dataset not in state.dataset_names():
        raise HTTPException(422, f"dataset: unknown dataset {req.dataset!r}; use one of {state.dataset_names()}")
    try:
        ds = state.dataset(req.dataset)
    except DatasetError as exc:
        raise HTTPException(409, str(exc)) from None
    values = {spec["name"]: getattr(req, spec["name"]) for spec in api_fields()}
    if values["seed"] is None:
        values["seed"] = draw_seed()
    try:
        config = TrainConfig(**values).validate(len(ds.train_labels))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        if req.resume:
            check_name(req.resume)
            if not state.store.exists(req.resume):
                raise HTTPException(404, f"no model named {req.resume!r} to resume")
        name = req.name or req.resume or state.store.new_name(req.dataset)
        state.store.check_free(name, req.resume)
    except ModelExists as exc:
        raise HTTPException(409, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(422, str(exc)) from None
    if req.with_drawings and not any(not d.damaged and not d.heldout for d in state.drawings.list()):
        raise HTTPException(422, "with_drawings: no drawings to learn from yet; teach some first (POST /api/drawings)")
    job = P.TrainJob(state.specs[req.dataset], config, name, req.resume, dataset_name=req.dataset,
                     with_drawings=req.with_drawings)
    try:
        run = state.manager.start(job)
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(503, str(exc)) from None
    return {"id": run, "model": name, "seed": config.seed}


@router.get("")
def list_runs(offset: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(100, ge=1, le=500),
              state: State = Depends(state_of)):
    """Runs newest first, `limit` from `offset`, with `total` and the `active` (training) run's id."""
    return {"runs": state.db.list(limit, offset), "total": state.db.count(), "offset": offset, "limit": limit,
            "active": state.manager.active}


@router.get("/{run}")
def get_run(run: str, state: State = Depends(state_of)):
    record = state.db.get(run)
    if record is None:
        raise HTTPException(404, f"no run {run!r}")
    return record


@router.get("/{run}/series")
def run_series(run: str, points: int = Query(1000, ge=10, le=20000), state: State = Depends(state_of)):
    """The run's curves from the history, each thinned to at most `points` (min and max per column)."""
    record = state.db.get_state(run)
    if record is None:
        raise HTTPException(404, f"no run {run!r}")
    return {**state.db.series(run, points), "state": record}


@router.delete("/{run}")
def delete_run(run: str, state: State = Depends(state_of)):
    """Forget a run: its record and events. Its model stays (DELETE /api/models/{name} removes that)."""
    current = state.db.get_state(run)
    if current is None:
        raise HTTPException(404, f"no run {run!r}")
    if current == "running" or state.manager.active == run:
        raise HTTPException(409, f"run {run} is training; cancel it first")
    if not state.db.delete(run):
        raise HTTPException(409, f"run {run} is training; cancel it first")
    return {"id": run, "deleted": True}


@router.post("/{run}/cancel")
def cancel_run(run: str, state: State = Depends(state_of)):
    record = state.db.get(run)
    if record is None:
        raise HTTPException(404, f"no run {run!r}")
    if not state.manager.cancel(run):
        raise HTTPException(409, f"run {run} is not training (state: {record['state']})")
    return {"id": run, "cancelling": True}


@router.websocket("/{run}/events")
async def run_events(ws: WebSocket, run: str, state: State = Depends(state_of)):
    """The run's stored events, then live ones; the last one always agrees with the stored state."""
    await ws.accept()
    record = await run_in_threadpool(state.db.get, run)
    if record is None:
        await ws.send_json({"type": "error", "error": f"no run {run!r}"})
        await ws.close(code=4404)
        return
    sub = state.manager.subscribe(run)  # before the replay, so nothing falls between the two
    try:
        last = -1
        for seq, event in await run_in_threadpool(state.db.events, run):
            await ws.send_text(json.dumps(event))
            last = seq
            if event["type"] in P.END_EVENTS:
                await ws.close()
                return
        record = await run_in_threadpool(state.db.get, run)
        if record["state"] != "running":
            # It ended while we replayed: its end event is stored before its state changes, so
            # read what was added since. Only a run cut short by a dead server has none.
            for seq, event in await run_in_threadpool(state.db.events, run, last):
                await ws.send_text(json.dumps(event))
                if event["type"] in P.END_EVENTS:
                    await ws.close()
                    return
            await ws.send_json({"type": "run.failed", "run": run, "error": record.get("error") or record["state"]})
            await ws.close()
            return
        while True:
            seq, kind, text = await sub.get()
            if seq <= last:
                continue
            await ws.send_text(text)
            if kind in P.END_EVENTS:
                await ws.close()
                return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.manager.unsubscribe(run, sub)
