"""The ASGI app: routers per area over one shared State, the static page, security. Never blocks.

Training runs in the worker process; prediction and evaluation run in the threadpool on
onnxruntime. The server process never imports torch: models are read as JSON and files, exports
happen at save time in the worker (or the CLI), and architectures are described by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..models.store import DamagedModel, InvalidModelName, ModelExists, ModelNotFound, StoreError
from .routes import ROUTERS
from .runs import RunManager
from .security import HostPolicy, SecurityMiddleware
from .state import ErrorBody, State, error

WEB = Path(__file__).resolve().parent.parent / "web"


def create_app(home: Path, dataset: str = "sample", token: str | None = None, worker_threads: int = 0,
               hosts: HostPolicy | None = None) -> FastAPI:
    """The app for `home`. `hosts`: the Host names it answers to (None only for in-process tests)."""
    state = State(Path(home), dataset)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.manager = RunManager(state.home, state.db, asyncio.get_running_loop(), threads=worker_threads)
        try:
            yield
        finally:
            await run_in_threadpool(state.downloads.close)
            await run_in_threadpool(state.manager.close)
            state.db.close()

    # no /docs or /redoc: their pages load Swagger UI from a CDN, which the page's CSP (and offline
    # use) forbids; the schema itself is at /openapi.json
    app = FastAPI(title="digitlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  responses={"4XX": {"model": ErrorBody, "description": "refused: the reason in one line"},
                             "5XX": {"model": ErrorBody, "description": "server error"}},
                  description="Train and use a handwritten-digit recognizer. Errors are {\"error\": \"...\"}.")
    app.state.digitlab = state

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, and unknown routes/methods
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        status = (404 if isinstance(exc, ModelNotFound) else 400 if isinstance(exc, InvalidModelName)
                  else 409 if isinstance(exc, (ModelExists, DamagedModel)) else 500)
        return error(status, str(exc))

    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(SecurityMiddleware, token=token, hosts=hosts)
    return app
