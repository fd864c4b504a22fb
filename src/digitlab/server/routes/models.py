"""Saved models: list, details, delete, layer table, evaluation, files, and prediction."""

from __future__ import annotations

import base64
import os

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...data import DatasetError
from ...inference import PreprocessError, decode_to_input, pixels_to_input
from ..state import State, error, state_of

router = APIRouter(prefix="/api/models")
MAX_UPLOAD = 5 << 20  # bytes accepted by the predict route


class PixelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: list[list[float]] = Field(..., min_length=28, max_length=2000)


def public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("weights", "onnx")}


@router.get("")
def list_models(state: State = Depends(state_of)):
    """Saved models, newest first; damaged ones (listed, never served) carry `damaged`: the reason."""
    return {"models": [public(r) for r in state.store.list(damaged=True)]}


@router.get("/{name}")
def get_model(name: str, state: State = Depends(state_of)):
    return public(state.store.record(name))


@router.delete("/{name}")
def delete_model(name: str, state: State = Depends(state_of)):
    active = state.manager.active and state.db.get(state.manager.active)
    if active and active["model"] == name:
        raise HTTPException(409, f"model {name!r} is being trained; cancel the run first")
    state.store.delete(name)
    return {"deleted": name}


@router.get("/{name}/summary")
def model_summary(name: str, state: State = Depends(state_of)):
    record = state.store.record(name)
    rows = record.get("summary") or state.architectures().get(record.get("architecture"), [])
    return {"model": name, "layers": rows, "total_params": sum(r["params"] for r in rows)}


@router.get("/{name}/evaluation")
def model_evaluation(name: str, state: State = Depends(state_of)):
    try:
        return {"model": name, **state.evaluation(name)}
    except DatasetError as exc:
        raise HTTPException(409, str(exc)) from None


def _model_file(state: State, name: str, kind: str, suffix: str, request: Request):
    """Stream the model's current file from an open handle: a save mid-download cannot cut it.

    The file's own name (new at every save) is its ETag, so a page can revalidate cheaply.
    """
    fh, filename = state.store.open_file(name, kind)
    etag = f'"{filename}"'
    headers = {"Cache-Control": "no-cache", "ETag": etag,
               "Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
    if request.headers.get("if-none-match") == etag:
        fh.close()
        return StreamingResponse(iter(()), status_code=304, headers=headers)
    size = os.fstat(fh.fileno()).st_size

    def chunks():
        with fh:
            while block := fh.read(1 << 16):
                yield block
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={**headers, "Content-Length": str(size)})


@router.get("/{name}/model.onnx")
def model_onnx(name: str, request: Request, state: State = Depends(state_of)):
    return _model_file(state, name, "onnx", "onnx", request)


@router.get("/{name}/model.safetensors")
def model_weights(name: str, request: Request, state: State = Depends(state_of)):
    return _model_file(state, name, "weights", "safetensors", request)


@router.post("/{name}/predict", openapi_extra={"requestBody": {"required": True, "content": {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": PixelsRequest.model_json_schema()}}}})
async def predict(name: str, request: Request, state: State = Depends(state_of)):
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD:
        return error(413, f"body larger than {MAX_UPLOAD // (1 << 20)} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD:
            return error(413, f"body larger than {MAX_UPLOAD // (1 << 20)} MB")
    if not body:
        return error(400, "empty body: send a PNG/JPEG image or {\"pixels\": [[...]]}")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    return await run_in_threadpool(_predict, state, name, bytes(body), is_json)


def _predict(state: State, name: str, body: bytes, is_json: bool):
    predictor = state.predictor(name)  # unknown model: 404 before looking at the body
    try:
        if is_json:
            try:
                req = PixelsRequest.model_validate_json(body)
            except ValueError as exc:
                first = exc.errors()[0] if hasattr(exc, "errors") and exc.errors() else {}
                return error(422, f"pixels: {first.get('msg', 'invalid JSON')}")
            x = pixels_to_input(req.pixels)
        else:
            x = decode_to_input(body)  # bounded in memory, time and concurrency
        prediction = predictor.predict_input(x)
    except PreprocessError as exc:
        return error(422, str(exc))
    return {"model": name, **prediction.to_dict(), "input": base64.b64encode(
        np.round(x * 255).astype(np.uint8).tobytes()).decode()}
