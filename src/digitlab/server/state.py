"""What the app holds, shared by its routers as a dependency: datasets, models, run history, caches."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from ..data import DatasetError, load_dataset
from ..data.datasets import BUILTINS, REMOTES, local_folder
from ..data.drawings import DrawingStore
from ..inference import Predictor
from ..inference.confidence import of_record
from ..models.store import ModelStore
from .db import RunDB
from .downloads import Downloads
from .runs import RunManager


class ErrorBody(BaseModel):
    """Every error: one line saying what is wrong."""

    error: str


MAX_UPLOAD = 5 << 20  # bytes accepted in one request body (an image, pixels, a drawing)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request, limit: int = MAX_UPLOAD) -> bytes | JSONResponse:
    """The request body, or a one-line 413 once it passes `limit` bytes (declared or streamed)."""
    too_big = error(413, f"body larger than {limit // (1 << 20)} MB")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return too_big
    return bytes(body)


class State:
    """The model store, run history, the worker's run manager, caches of datasets and predictors."""

    def __init__(self, home: Path, dataset: str):
        self.home = home
        # API name -> what load_dataset() takes. A folder given to `serve --dataset` goes by its own
        # name (plus "-folder" if that is a built-in's name) and loads from its resolved path.
        self.specs = {name: name for name in BUILTINS}
        if dataset in BUILTINS:
            self.default_dataset = dataset
        else:
            folder = Path(dataset).expanduser().resolve()
            name = folder.name or "folder"
            self.default_dataset = f"{name}-folder" if name in BUILTINS else name
            self.specs[self.default_dataset] = str(folder)
        self.store = ModelStore(home)
        self.db = RunDB(home / "runs.sqlite3")
        self.drawings = DrawingStore(home, self.db)  # the user's taught drawings (routes/drawings.py)
        self.drawings.remove_orphans()  # files a crash left unlisted; one server per home, so none is being written
        self.manager: RunManager | None = None
        self.downloads = Downloads(home)  # the page's dataset downloads, in background threads
        self._datasets: dict[str, object] = {}
        self._predictors: dict[Path, Predictor] = {}
        self._evaluations: dict[tuple, dict] = {}
        self._lock = threading.Lock()
        self._dataset_lock = threading.Lock()  # loading one can take a moment: not under _lock

    def dataset(self, name: str):
        """A served dataset by its API name."""
        if name not in self.specs:
            raise DatasetError(f"dataset {name!r} is not served here (start `digitlab serve --dataset ...`)")
        return self.load_spec(self.specs[name])

    def load_spec(self, spec: str):
        """A dataset by what a record holds (built-in name or folder path); loaded once, never downloaded."""
        with self._dataset_lock:
            if spec not in self._datasets:
                self._datasets[spec] = load_dataset(spec, home=self.home, allow_download=False)
            return self._datasets[spec]

    def dataset_names(self) -> list[str]:
        return list(self.specs)

    def available(self, name: str) -> bool:
        return name not in REMOTES or local_folder(name, self.home) is not None

    def predictor(self, name: str) -> Predictor:
        """The model's current ONNX version in onnxruntime, cached per file (a save makes a new file).

        The ONNX file is written at save time (by the worker or the CLI): the server never exports.
        """
        fh, filename = self.store.open_file(name, "onnx")
        key = self.store.folder(name) / filename
        with fh, self._lock:
            if key not in self._predictors:
                record = self.store.record(name)  # the thresholds fitted with this version's temperature
                calibration = of_record(record if record.get("onnx") == filename else {})
                self._predictors = {p: s for p, s in self._predictors.items() if p.exists()}
                self._predictors[key] = Predictor(fh.read(), calibration=calibration)
            return self._predictors[key]

    def evaluation(self, name: str) -> dict:
        """The model's report on its dataset's test split, computed once per saved version."""
        from ..evaluation import evaluate_model

        record = self.store.record(name)
        key = (name, record.get("onnx"))
        if key not in self._evaluations:
            ds = self.load_spec(record.get("dataset", "sample"))
            report = evaluate_model(self.predictor(name), ds)
            for m in report["misclassified"]:
                m["pixels"] = base64.b64encode(ds.test_images[m["index"]].tobytes()).decode()
            report["classes"] = list(ds.classes)
            with self._lock:
                self._evaluations = {k: v for k, v in self._evaluations.items() if k[0] != name}
                self._evaluations[key] = report
        return self._evaluations[key]

    def architectures(self, timeout: float = 60.0) -> dict:
        """name -> layer table, as reported by the worker (which has torch; the server does not)."""
        supervisor = self.manager.supervisor
        supervisor.ready.wait(timeout)
        return supervisor.architectures


def state_of(conn: HTTPConnection) -> State:
    """The routers' dependency: the app's State."""
    return conn.app.state.digitlab
