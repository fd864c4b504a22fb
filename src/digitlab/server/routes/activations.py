"""What a model sees: its activation graph for the page's Web Worker, and the same numbers as JSON
for a posted image (inference/activations.py builds both from the model's ONNX file, torch-free)."""

from __future__ import annotations

import threading
from pathlib import Path as FilePath

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...inference.activations import ActivationError, ActivationModel, activation_graph
from ..state import State, error, read_body, state_of
from .models import PixelsRequest, body_to_input, input_b64

router = APIRouter(prefix="/api/models")
_cache: dict[FilePath, dict] = {}  # the model's ONNX file -> {"graph": bytes, "model": ActivationModel}
_lock = threading.Lock()


def _entry(state: State, name: str) -> tuple[dict, str]:
    """The activation graph of the model's current ONNX file (built once per saved version), and
    that file's name (its ETag: a save makes a new one)."""
    fh, filename = state.store.open_file(name, "onnx")
    key = state.store.folder(name) / filename
    with fh:
        with _lock:
            entry = _cache.get(key)
        if entry is None:
            try:
                entry = {"graph": activation_graph(fh.read()), "model": None}
            except ActivationError as exc:
                raise HTTPException(409, f"model {name!r}: {exc}") from None
            with _lock:
                for old in [k for k in _cache if not k.exists()]:  # versions a save replaced
                    del _cache[old]
                entry = _cache.setdefault(key, entry)
    return entry, filename


@router.get("/{name}/activations.onnx", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "ONNX graph"}})
def activations_onnx(name: str, request: Request, state: State = Depends(state_of)):
    """The model's ONNX graph with two more outputs, `conv1` and `conv2` (the first image's feature
    maps after each of its first two convolutions), for the page's activation view."""
    entry, filename = _entry(state, name)
    etag = f'"activations-{filename}"'
    headers = {"Cache-Control": "no-cache", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(entry["graph"], media_type="application/octet-stream", headers=headers)


@router.post("/{name}/activations", openapi_extra={"requestBody": {"required": True, "content": {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": PixelsRequest.model_json_schema()}}}})
async def activations(name: str, request: Request, state: State = Depends(state_of)):
    """What the model sees in an image (PNG/JPEG, or `{"pixels": [[...]]}`): `digit`,
    `probabilities`, `conv1` (8x26x26), `conv2` (16x11x11) and `saliency` (28x28: how much erasing
    the pixel's 4x4 neighbourhood lowers the log-probability of the answer), and the `input`."""
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    if not body:
        return error(400, "empty body: send a PNG/JPEG image or {\"pixels\": [[...]]}")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    return await run_in_threadpool(_activations, state, name, body, is_json)


def _activations(state: State, name: str, body: bytes, is_json: bool):
    entry, _ = _entry(state, name)  # unknown model: 404 before looking at the body
    x = body_to_input(body, is_json)
    if isinstance(x, Response):
        return x
    with _lock:
        if entry["model"] is None:
            entry["model"] = ActivationModel(entry["graph"])
        model = entry["model"]
    seen = model.run(x)
    return {"model": name, "digit": seen["digit"], "probabilities": seen["probabilities"].astype(float).tolist(),
            "conv1": seen["conv1"].astype(float).tolist(), "conv2": seen["conv2"].astype(float).tolist(),
            "saliency": seen["saliency"].tolist(),
            "input": input_b64(x)}
