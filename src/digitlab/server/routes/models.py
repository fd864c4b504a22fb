"""Saved models: list, details, delete, layer table, evaluation, files, and prediction."""

from __future__ import annotations

import base64
import hashlib
import os

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...data import DatasetError
from ...inference import PreprocessError, decode_to_input, pixels_to_input
from ...inference.confidence import of_record
from ...models import tfjs
from ..state import State, error, read_body, state_of

router = APIRouter(prefix="/api/models")


class PixelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: list[list[float]] = Field(..., min_length=28, max_length=2000)


def public(record: dict) -> dict:
    """A record as the API shows it: no file names; the calibration with its defaults filled in."""
    out = {k: v for k, v in record.items() if k not in ("weights", "onnx")}
    if "damaged" not in record:
        out["calibration"] = of_record(record)
    return out


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


def _tfjs(state: State, name: str, shard_name: str | None = None) -> tfjs.TfjsModel:
    """The model as TF.js files, converted now from its weights (a few ms; numpy, no torch)."""
    try:
        return tfjs.export_model(state.store, name, shard_name)
    except tfjs.TfjsError as exc:
        raise HTTPException(409, str(exc)) from None


def _binary(media_type: str, what: str) -> dict:
    """The OpenAPI description of a 200 that is a file, not JSON."""
    schema = {"type": "object"} if media_type == "application/json" else {"type": "string", "format": "binary"}
    return {200: {"description": what, "content": {media_type: {"schema": schema}}}}


def _bytes(data: bytes, media_type: str, request: Request, **headers: str) -> Response:
    """`data` with its content hash as ETag (304 when the client has it)."""
    etag = f'"{hashlib.sha256(data).hexdigest()[:24]}"'
    headers = {"Cache-Control": "no-cache", "ETag": etag, **headers}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/{name}/tfjs/model.json", response_class=Response,
            responses=_binary("application/json", "TF.js model.json"))
def model_tfjs(name: str, request: Request, state: State = Depends(state_of)):
    """The model as a TF.js Layers model: `tf.loadLayersModel('/api/models/NAME/tfjs/model.json')`.

    Its weight shard is named after the weights' version, so a save in between the two requests
    makes the shard's request fail (404) rather than mix two versions."""
    return _bytes(_tfjs(state, name).json, "application/json", request)


@router.get("/{name}/tfjs/{shard}", response_class=Response,
            responses=_binary("application/octet-stream", "float32 weights"))
def model_tfjs_shard(name: str, shard: str, request: Request, state: State = Depends(state_of)):
    """The weight shard that the model's current tfjs/model.json names (float32, little-endian)."""
    model = _tfjs(state, name)
    if shard != model.shard_name:
        raise HTTPException(404, f"model {name!r} has no TF.js file {shard[:80]!r}: its tfjs/model.json names "
                                 f"{model.shard_name} (after a save, fetch model.json anew)")
    return _bytes(model.shard, "application/octet-stream", request)


@router.get("/{name}/tfjs.zip", response_class=Response,
            responses=_binary("application/zip", "model.json + shard"))
def model_tfjs_zip(name: str, request: Request, state: State = Depends(state_of)):
    """model.json and its shard in one zip (folder NAME/): the page's one-click TF.js download."""
    try:
        data = tfjs.zip_bytes(state.store, name)
    except tfjs.TfjsError as exc:
        raise HTTPException(409, str(exc)) from None
    return _bytes(data, "application/zip", request,
                  **{"Content-Disposition": f'attachment; filename="{name}-tfjs.zip"'})


@router.post("/{name}/predict", openapi_extra={"requestBody": {"required": True, "content": {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": PixelsRequest.model_json_schema()}}}})
async def predict(name: str, request: Request, state: State = Depends(state_of)):
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    if not body:
        return error(400, "empty body: send a PNG/JPEG image or {\"pixels\": [[...]]}")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    return await run_in_threadpool(_predict, state, name, body, is_json)


def body_to_input(body: bytes, is_json: bool):
    """A PNG/JPEG body, or `{"pixels": [[...]]}` JSON, -> the (28, 28) model input; or the one-line
    422 response saying why not. Images are decoded bounded in memory, time and concurrency."""
    try:
        if is_json:
            try:
                req = PixelsRequest.model_validate_json(body)
            except ValueError as exc:
                first = exc.errors()[0] if hasattr(exc, "errors") and exc.errors() else {}
                return error(422, " ".join(f"pixels: {first.get('msg', 'invalid JSON')}".split()))
            return pixels_to_input(req.pixels)
        return decode_to_input(body)
    except PreprocessError as exc:
        return error(422, str(exc))


def input_b64(x: np.ndarray) -> str:
    """The model input as the page shows it: 784 bytes, base64."""
    return base64.b64encode(np.round(x * 255).astype(np.uint8).tobytes()).decode()


def _predict(state: State, name: str, body: bytes, is_json: bool):
    predictor = state.predictor(name)  # unknown model: 404 before looking at the body
    x = body_to_input(body, is_json)
    if isinstance(x, Response):
        return x
    return {"model": name, **predictor.predict_input(x).to_dict(), "input": input_b64(x)}
