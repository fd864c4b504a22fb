"""The ASGI app: JSON API, WebSocket run events, the static page. Heavy work never runs on the loop.

Training runs in the worker process; prediction and evaluation run in the threadpool on
onnxruntime (the server process never imports torch for them); SQLite calls are short.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..data import DatasetError, load_dataset
from ..data.datasets import REMOTES, local_folder
from ..inference import PreprocessError, Predictor, pixels_to_input
from ..inference.predict import decode_image
from ..models import InvalidModelName, ModelNotFound, ModelStore, StoreError, check_name
from ..worker import protocol as P
from .db import RunDB
from .runs import Busy, RunManager
from .security import SecurityMiddleware

WEB = Path(__file__).resolve().parent.parent / "web"
MAX_UPLOAD = 5 << 20  # bytes accepted by the predict route


class RunRequest(BaseModel):
    """POST /api/runs: what to train. Out-of-range values get a 422 naming the field."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field("sample", max_length=200)
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(128, ge=1, le=65536)
    learning_rate: float = Field(4e-3, gt=0, le=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    name: str | None = Field(None, max_length=64)
    resume: str | None = Field(None, max_length=64)

    @field_validator("learning_rate")
    @classmethod
    def finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("learning_rate must be a finite number")
        return v


class ErrorBody(BaseModel):
    """Every error: one line saying what is wrong."""

    error: str


class PixelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: list[list[float]] = Field(..., min_length=28, max_length=2000)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class State:
    """What the app holds: the model store, run history, the worker, caches of datasets and sessions."""

    def __init__(self, home: Path, dataset: str):
        self.home = home
        # datasets by the name the API uses; a folder given to `serve --dataset` goes by its own name
        self.specs = {name: name for name in ("sample", "mnist", "fashion-mnist")}
        self.default_dataset = dataset if dataset in self.specs else (Path(dataset).name or "custom")
        self.specs.setdefault(self.default_dataset, dataset)
        self.store = ModelStore(home)
        self.db = RunDB(home / "runs.sqlite3")
        self.manager: RunManager | None = None
        self._datasets: dict[str, object] = {}
        self._predictors: dict[Path, Predictor] = {}
        self._evaluations: dict[tuple, dict] = {}
        self._summary: list | None = None
        self._lock = threading.Lock()
        self._dataset_lock = threading.Lock()  # loading one can take a moment: not under _lock

    def dataset(self, name: str):
        if name not in self.specs:
            raise DatasetError(f"dataset {name!r} is not served here (start `digitlab serve --dataset ...`)")
        with self._dataset_lock:
            if name not in self._datasets:
                self._datasets[name] = load_dataset(self.specs[name], home=self.home, allow_download=False)
            return self._datasets[name]

    def dataset_names(self) -> list[str]:
        return list(self.specs)

    def available(self, name: str) -> bool:
        return name not in REMOTES or local_folder(name, self.home) is not None

    def predictor(self, name: str) -> Predictor:
        path = self.store.onnx_path(name)
        with self._lock:
            if path not in self._predictors:
                self._predictors = {p: s for p, s in self._predictors.items() if p.exists()}
                self._predictors[path] = Predictor(path)
            return self._predictors[path]

    def evaluation(self, name: str) -> dict:
        """The model's report on its dataset's test split, computed once per saved version."""
        from ..evaluation import evaluate_model

        record = self.store.record(name)
        key = (name, record.get("onnx"))
        if key not in self._evaluations:
            ds = self.dataset(record.get("dataset", "sample"))
            report = evaluate_model(self.store.onnx_path(name), ds)
            for m in report["misclassified"]:
                m["pixels"] = base64.b64encode(ds.test_images[m["index"]].tobytes()).decode()
            report["classes"] = list(ds.classes)
            with self._lock:
                self._evaluations = {k: v for k, v in self._evaluations.items() if k[0] != name}
                self._evaluations[key] = report
        return self._evaluations[key]

    def architecture_summary(self) -> list:
        if self._summary is None:
            from ..models import build, layer_table  # imports torch once, in a threadpool thread
            self._summary = layer_table(build("blog-cnn"))
        return self._summary


def create_app(home: Path, dataset: str = "sample", token: str | None = None, worker_threads: int = 0) -> FastAPI:
    state = State(Path(home), dataset)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.manager = RunManager(state.home, state.db, asyncio.get_running_loop(), threads=worker_threads)
        try:
            yield
        finally:
            await run_in_threadpool(state.manager.close)
            state.db.close()

    app = FastAPI(title="digitlab", version=__version__, lifespan=lifespan,
                  responses={"4XX": {"model": ErrorBody, "description": "refused: the reason in one line"},
                             "5XX": {"model": ErrorBody, "description": "server error"}},
                  description="Train and use a handwritten-digit recognizer. Errors are {\"error\": \"...\"}.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        status = 404 if isinstance(exc, ModelNotFound) else 400 if isinstance(exc, InvalidModelName) else 500
        return error(status, str(exc))

    # ---- health, datasets -------------------------------------------------------------------

    @app.get("/api/health")
    def health():
        return {"status": "ok", "version": __version__}

    @app.get("/api/datasets")
    def datasets():
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

    @app.get("/api/datasets/{name}/examples")
    def examples(name: str, split: Literal["train", "test"] = "train", count: int = Query(16, ge=1, le=256),
                 seed: int = Query(0, ge=0, le=2**31 - 1)):
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

    # ---- runs --------------------------------------------------------------------------------

    @app.post("/api/runs", status_code=201)
    def start_run(req: RunRequest):
        if req.dataset not in state.dataset_names():
            raise HTTPException(422, f"dataset: unknown dataset {req.dataset!r}; use one of {state.dataset_names()}")
        try:
            ds = state.dataset(req.dataset)
        except DatasetError as exc:
            raise HTTPException(409, str(exc)) from None
        if req.batch_size > len(ds.train_labels):
            raise HTTPException(422, f"batch_size: {req.batch_size} is larger than the {len(ds.train_labels)} training images")
        try:
            if req.resume:
                check_name(req.resume)
                if not state.store.exists(req.resume):
                    raise HTTPException(404, f"no model named {req.resume!r} to resume")
                name = req.name or req.resume
            else:
                name = req.name or state.store.unique_name(f"{req.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
            check_name(name)
        except StoreError as exc:
            raise HTTPException(422, str(exc)) from None
        if not req.resume and req.name and state.store.exists(req.name):
            raise HTTPException(409, f"a model named {req.name!r} exists; pick another name or resume it")
        params = {**req.model_dump(), "name": name, "dataset": state.specs[req.dataset]}
        try:
            run = state.manager.start(params)
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None
        except RuntimeError as exc:
            raise HTTPException(503, str(exc)) from None
        return {"id": run, "model": name}

    @app.get("/api/runs")
    def list_runs():
        return {"runs": state.db.list(), "active": state.manager.active}

    @app.get("/api/runs/{run}")
    def get_run(run: str):
        record = state.db.get(run)
        if record is None:
            raise HTTPException(404, f"no run {run!r}")
        return record

    @app.post("/api/runs/{run}/cancel")
    def cancel_run(run: str):
        record = state.db.get(run)
        if record is None:
            raise HTTPException(404, f"no run {run!r}")
        if not state.manager.cancel(run):
            raise HTTPException(409, f"run {run} is not training (state: {record['state']})")
        return {"id": run, "cancelling": True}

    @app.websocket("/api/runs/{run}/events")
    async def run_events(ws: WebSocket, run: str):
        await ws.accept()
        record = await run_in_threadpool(state.db.get, run)
        if record is None:
            await ws.send_json({"type": "error", "error": f"no run {run!r}"})
            await ws.close(code=4404)
            return
        sub = state.manager.subscribe(run)
        try:
            history = await run_in_threadpool(state.db.events, run)
            last = -1
            for seq, event in history:
                await ws.send_text(json.dumps(event))
                last = seq
                if event["type"] in P.END_EVENTS:
                    await ws.close()
                    return
            record = await run_in_threadpool(state.db.get, run)
            if record["state"] != "running":  # ended without an end event (interrupted server)
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

    # ---- models ------------------------------------------------------------------------------

    def public(record: dict) -> dict:
        return {k: v for k, v in record.items() if k not in ("weights", "onnx")}

    @app.get("/api/models")
    def list_models():
        return {"models": [public(r) for r in state.store.list()]}

    @app.get("/api/models/{name}")
    def get_model(name: str):
        return public(state.store.record(name))

    @app.delete("/api/models/{name}")
    def delete_model(name: str):
        active = state.manager.active and state.db.get(state.manager.active)
        if active and active["model"] == name:
            raise HTTPException(409, f"model {name!r} is being trained; cancel the run first")
        state.store.delete(name)
        return {"deleted": name}

    @app.get("/api/models/{name}/summary")
    def model_summary(name: str):
        record = state.store.record(name)
        rows = record.get("summary") or state.architecture_summary()
        return {"model": name, "layers": rows, "total_params": sum(r["params"] for r in rows)}

    @app.get("/api/architectures/blog-cnn/summary")
    def architecture_summary():
        rows = state.architecture_summary()
        return {"model": None, "layers": rows, "total_params": sum(r["params"] for r in rows)}

    @app.get("/api/models/{name}/evaluation")
    def model_evaluation(name: str):
        try:
            return {"model": name, **state.evaluation(name)}
        except DatasetError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/api/models/{name}/model.onnx")
    def model_onnx(name: str):
        path = state.store.onnx_path(name)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{name}.onnx",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api/models/{name}/model.safetensors")
    def model_weights(name: str):
        record = state.store.record(name)
        return FileResponse(state.store.folder(name) / record["weights"], media_type="application/octet-stream",
                            filename=f"{name}.safetensors")

    @app.post("/api/models/{name}/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": PixelsRequest.model_json_schema()}}}})
    async def predict(name: str, request: Request):
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
        return await run_in_threadpool(_predict, name, bytes(body), is_json)

    def _predict(name: str, body: bytes, is_json: bool):
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
                from ..inference import image_to_input
                x = image_to_input(decode_image(body))
            prediction = predictor.predict_input(x)
        except PreprocessError as exc:
            return error(422, str(exc))
        return {"model": name, **prediction.to_dict(), "input": base64.b64encode(
            np.round(x * 255).astype(np.uint8).tobytes()).decode()}

    # ---- the page ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(SecurityMiddleware, token=token)
    return app
