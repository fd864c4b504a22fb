"""The model store: weights in safetensors, a JSON record, an ONNX export; atomic writes, no pickles.

Layout: HOME/models/NAME/model.json names the weights and ONNX files it belongs to
(`weights-<id>.safetensors`, `model-<id>.onnx`). A save writes new files under fresh names,
then atomically replaces model.json (the commit point), then removes the old files. A crash or
a full disk at any moment leaves either the old model or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .architectures import build

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RECORD = "model.json"


class StoreError(Exception):
    """A model is missing, unreadable or cannot be written; the message says which and why."""


class ModelNotFound(StoreError):
    """No model by that name (or none at all)."""


class InvalidModelName(StoreError):
    """A name that cannot be a model's folder."""


def check_name(name: str) -> str:
    """Model names are folder names: letters, digits, . _ - (64 at most), no path tricks."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:40]!r}..."
        raise InvalidModelName(f"invalid model name {shown!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def _write_atomic(path: Path, write) -> None:
    """Call write(tmp_path), fsync, rename onto `path`; on failure remove the temp file."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ModelStore:
    """Saved models under `home/models`: save, load, list, delete."""

    def __init__(self, home: str | os.PathLike):
        self.root = Path(home) / "models"

    def ensure_writable(self) -> None:
        """Fail now, with a clear message, rather than after a training run that cannot be saved."""
        probe = self.root / f".probe-{uuid.uuid4().hex[:8]}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"cannot save models in {self.root}: {exc.strerror or exc}") from None

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.folder(name) / RECORD).is_file()

    def save(self, name: str, model: nn.Module, record: dict, onnx: bytes | None = None) -> dict:
        """Save weights (+ ONNX) and the record under `name`, replacing any earlier version atomically."""
        folder = self.folder(name)
        file_id = uuid.uuid4().hex[:12]
        weights, onnx_name = f"weights-{file_id}.safetensors", f"model-{file_id}.onnx"
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        record = {**record, "name": name, "weights": weights, "onnx": onnx_name if onnx else None,
                  "parameters": sum(int(v.numel()) for v in state.values()), "updated": time.time()}
        record.setdefault("created", record["updated"])
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / weights, lambda p: save_file(state, str(p), metadata={"name": name}))
            written.append(folder / weights)
            if onnx:
                _write_atomic(folder / onnx_name, lambda p: p.write_bytes(onnx))
                written.append(folder / onnx_name)
            _write_atomic(folder / RECORD, lambda p: p.write_text(json.dumps(record, indent=1)))
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise StoreError(f"could not save model {name!r} in {self.root}: {exc.strerror or exc}") from None
        for stale in folder.iterdir():
            if stale.name not in (RECORD, weights, onnx_name) and not stale.name.startswith(".tmp"):
                stale.unlink(missing_ok=True)
        return record

    def record(self, name: str) -> dict:
        path = self.folder(name) / RECORD
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelNotFound(f"no model named {name!r}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"model {name!r}: unreadable record ({exc})") from None

    def load(self, name: str) -> tuple[nn.Module, dict]:
        """Rebuild the architecture and load its weights from safetensors (never a pickle)."""
        record = self.record(name)
        try:
            model = build(record["architecture"])
            state = load_file(str(self.folder(name) / record["weights"]))
            model.load_state_dict(state, strict=True)
        except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as exc:
            raise StoreError(f"model {name!r}: cannot load weights ({exc})") from None
        return model.eval(), record

    def onnx_path(self, name: str) -> Path:
        """The model's ONNX file, exported now from its weights if it has none yet."""
        record = self.record(name)
        if record.get("onnx") and (self.folder(name) / record["onnx"]).is_file():
            return self.folder(name) / record["onnx"]
        from .export import onnx_bytes
        model, record = self.load(name)
        record = self.save(name, model, record, onnx=onnx_bytes(model))
        return self.folder(name) / record["onnx"]

    def list(self) -> list[dict]:
        """All saved models' records, newest first."""
        if not self.root.is_dir():
            return []
        records = []
        for folder in self.root.iterdir():
            if folder.is_dir() and NAME_RE.match(folder.name) and (folder / RECORD).is_file():
                try:
                    records.append(self.record(folder.name))
                except StoreError:
                    continue
        return sorted(records, key=lambda r: r.get("updated", 0), reverse=True)

    def resolve(self, name: str | None) -> str:
        """`name` checked to exist, or the newest model when None."""
        if name is None:
            models = self.list()
            if not models:
                raise ModelNotFound("no saved models yet; train one with `digitlab train`")
            return models[0]["name"]
        if not self.exists(name):
            raise ModelNotFound(f"no model named {check_name(name)!r}")
        return name

    def delete(self, name: str) -> None:
        """Remove a model: renamed away first (atomic), then deleted."""
        folder = self.folder(name)
        if not (folder / RECORD).is_file():
            raise ModelNotFound(f"no model named {name!r}")
        trash = self.root / f".deleted-{name}-{uuid.uuid4().hex[:6]}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def unique_name(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`... whichever is free."""
        base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-.")[:56] or "model"
        name, n = base, 1
        while self.exists(name):
            n += 1
            name = f"{base}-{n}"
        return name

