"""The user's taught drawings: add (a PNG of the pad, or pixels, with the true label), list, the
pad image, delete, and all of them as an IDX folder (zip). Files and rows: data/drawings.py."""

from __future__ import annotations

import base64
import io
import threading
import zipfile
from typing import Optional

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ...data import DatasetError
from ...data.drawings import PNG_SIDE, DrawingNotFound
from ...inference import PreprocessError, decode_image, decode_to_input, pixels_to_input
from ...models.store import check_name
from ..state import State, error, read_body, state_of

router = APIRouter(prefix="/api/drawings")
DRAWING_ID = Path(..., ge=1, le=2**53, description="the drawing's id (ids are never reused)")
_png_slot = threading.BoundedSemaphore(1)  # the stored copy of an uploaded image: one decode at a time


class DrawingRequest(BaseModel):
    """A drawing as grayscale pixels (at least 28x28, either polarity) with its true label."""

    model_config = ConfigDict(extra="forbid")
    pixels: list[list[float]] = Field(..., min_length=28, max_length=2000)
    label: int = Field(..., ge=0, le=9, description="the digit it is")
    model: Optional[str] = Field(None, max_length=64, description="the model that read it (its answer is recorded)")


def _png(image) -> bytes:
    """A PIL image as the stored pad picture: grayscale on white, long side at most PNG_SIDE."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("L")
    image.thumbnail((PNG_SIDE, PNG_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@router.post("", status_code=201, openapi_extra={"requestBody": {"required": True, "content": {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": DrawingRequest.model_json_schema()}}}})
async def add_drawing(request: Request,
                      label: Optional[int] = Query(None, ge=0, le=9, description="the digit it is (image bodies)"),
                      model: Optional[str] = Query(None, max_length=64, description="the model that read it"),
                      state: State = Depends(state_of)):
    """Keep a drawing with its true label (PNG/JPEG body with `?label=N`, or JSON pixels); 201 `{id, ...}`."""
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    if not body:
        return error(400, "empty body: send the pad as a PNG with ?label=N, or {\"pixels\": [[...]], \"label\": N}")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    return await run_in_threadpool(_add, state, body, is_json, label, model)


def _add(state: State, body: bytes, is_json: bool, label: int | None, model: str | None):
    if is_json:
        try:
            req = DrawingRequest.model_validate_json(body)
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") and exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            return error(422, " ".join(f"{where}: {first.get('msg', 'invalid JSON')}".split()))
        label, model = req.label, req.model if req.model is not None else model
    elif label is None:
        return error(422, "label: required: say which digit it is with ?label=N (0-9)")
    predictor = None
    if model is not None:
        check_name(model)  # a bad name: 400; an unknown model: 404 (the app's StoreError handler)
        predictor = state.predictor(model)
    try:
        if is_json:
            x = pixels_to_input(req.pixels)  # checks shape, values, an empty drawing
            png = _png(_gray_image(req.pixels))
        else:
            x = decode_to_input(body)  # bounded in memory, time and concurrency
            with _png_slot:
                png = _png(decode_image(body))
        predicted = predictor.predict_input(x).digit if predictor else None
        drawing = state.drawings.add(x, png, label, model, predicted)
    except (PreprocessError, ValueError) as exc:
        return error(422, str(exc))
    return {**drawing.to_dict(), "pixels": base64.b64encode(drawing.pixels.tobytes()).decode()}


def _gray_image(pixels):
    from PIL import Image
    return Image.fromarray(np.clip(np.rint(np.asarray(pixels, dtype=np.float64)), 0, 255).astype(np.uint8), "L")


@router.get("")
def list_drawings(state: State = Depends(state_of)):
    """Every drawing, oldest first: label, model, what it read, held out or not, its 28x28 input
    (base64), or `damaged` with the reason; per-digit counts of the usable ones."""
    drawings = state.drawings.list()
    usable = [d for d in drawings if not d.damaged]
    return {
        "drawings": [{**d.to_dict(), "pixels": base64.b64encode(d.pixels.tobytes()).decode()
                      if d.pixels is not None else None} for d in drawings],
        "counts": np.bincount([d.label for d in usable], minlength=10).tolist(),
        "heldout_counts": np.bincount([d.label for d in usable if d.heldout], minlength=10).tolist(),
        "damaged": len(drawings) - len(usable),
    }


@router.get("/export.zip", response_class=Response,
            responses={200: {"content": {"application/zip": {}}, "description": "the four IDX files"}})
def export_drawings(state: State = Depends(state_of)):
    """The usable drawings as an IDX folder in a zip (`digitlab train --dataset FOLDER` reads it):
    train = the learned ones, t10k = the held-out ones."""
    try:
        files = state.drawings.export_files()
    except DatasetError as exc:
        raise HTTPException(409, str(exc)) from None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for stem, data in files.items():
            zf.writestr(f"drawings/{stem}", data)
    return Response(out.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="drawings.zip"', "Cache-Control": "no-store"})


@router.get("/{drawing_id}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the pad as drawn"}})
def drawing_png(drawing_id: int = DRAWING_ID, state: State = Depends(state_of)):
    """The pad as it was drawn (grayscale PNG)."""
    try:
        path = state.drawings.png_path(drawing_id)
        data = path.read_bytes()
    except DrawingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except OSError:
        raise HTTPException(409, f"drawing {drawing_id}: its image file is missing or unreadable") from None
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.delete("/{drawing_id}")
def delete_drawing(drawing_id: int = DRAWING_ID, state: State = Depends(state_of)):
    try:
        state.drawings.delete(drawing_id)
    except DrawingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return {"deleted": drawing_id}
