"""The model store: weights in safetensors, a JSON record, an ONNX export; atomic writes, no pickles.

Layout: HOME/models/NAME/model.json names the weights and ONNX files it belongs to
(`weights-<id>.safetensors`, `model-<id>.onnx`). A save writes new files under fresh names,
then atomically replaces model.json (the commit point), then removes the old files. A crash or
a full disk at any moment leaves either the old model or the new one, never a mix.

A record is data from disk, not trusted: every file it names must be a plain file directly in
that model's folder (no path, no symlink out), or the model is reported as damaged, never served.
A file being downloaded stays readable after a newer save replaces it: `open_file` hands out an
open handle, and an unlinked file lives on until its last handle closes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

if TYPE_CHECKING:  # torch is imported only by what saves or loads weights, never to list or serve
    from torch import nn

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # always used with fullmatch
FILE_RE = {"weights": re.compile(r"weights-[0-9a-f]{1,32}\.safetensors"), "onnx": re.compile(r"model-[0-9a-f]{1,32}\.onnx")}
RECORD = "model.json"
FileKind = Literal["weights", "onnx"]


class StoreError(Exception):
    """A model is missing, unreadable or cannot be written; the message says which and why."""


class ModelNotFound(StoreError):
    """No model by that name (or none at all)."""


class InvalidModelName(StoreError):
    """A name that cannot be a model's folder."""


class ModelExists(StoreError):
    """A save would replace a model the user did not ask to replace."""


class DamagedModel(StoreError):
    """A model's record or files are unusable (unreadable, or naming a file outside its folder)."""


def check_name(name: str) -> str:
    """Model names are folder names: letters, digits, . _ - (64 at most), no path tricks."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:40]!r}..."
        raise InvalidModelName(f"invalid model name {shown!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def class_count(record: dict) -> int:
    """K, the number of classes of a saved model: its record's `classes` (10 digits when absent, as
    in records made before models had other classes); a record naming no sensible list is damaged."""
    classes = record.get("classes")
    if classes is None:
        return 10
    if not isinstance(classes, list) or not 2 <= len(classes) <= 256 or not all(isinstance(c, str) for c in classes):
        raise DamagedModel(f"model {record.get('name', '?')!r} is damaged: its record's classes are not a list "
                           "of 2 to 256 names")
    return len(classes)


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

    def save(self, name: str, model: "nn.Module", record: dict, onnx: bytes | None = None) -> dict:
        """Save weights (+ ONNX) and the record under `name`, replacing any earlier version atomically.

        Whether replacing is wanted is the caller's decision (see `check_free`)."""
        from safetensors.torch import save_file
        folder = self._model_folder(name)
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

    def _model_folder(self, name: str) -> Path:
        """The model's folder, refused when it is a link or leads outside the store."""
        folder = self.folder(name)
        if folder.is_symlink() or folder.resolve().parent != self.root.resolve():
            raise DamagedModel(f"model {name!r} is damaged: its folder is a link out of {self.root}")
        return folder

    def record(self, name: str) -> dict:
        path = self._model_folder(name) / RECORD
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelNotFound(f"no model named {name!r}") from None
        except (OSError, ValueError) as exc:
            raise DamagedModel(f"model {name!r} is damaged: unreadable record ({exc})") from None
        if not isinstance(record, dict):
            raise DamagedModel(f"model {name!r} is damaged: its record is not a JSON object")
        for kind in ("weights", "onnx"):
            self._checked(name, record, kind)
        return record

    def _checked(self, name: str, record: dict, kind: FileKind) -> Path | None:
        """The path of the record's `kind` file, only if it is a plain file name in the model's folder."""
        value = record.get(kind)
        if value is None and kind == "onnx":
            return None
        if not isinstance(value, str) or not FILE_RE[kind].fullmatch(value):
            raise DamagedModel(f"model {name!r} is damaged: its record names {kind} file {str(value)[:80]!r}, "
                               "not a file of its own folder")
        path = self.folder(name) / value
        if path.is_symlink():
            raise DamagedModel(f"model {name!r} is damaged: {value} is a link")
        return path

    def file_path(self, name: str, kind: FileKind) -> Path:
        """The model's current weights or ONNX file (checked to lie in its folder)."""
        fh, filename = self.open_file(name, kind)
        fh.close()
        return self.folder(name) / filename

    def open_file(self, name: str, kind: FileKind, tries: int = 5) -> tuple[BinaryIO, str]:
        """An open handle on the model's current weights or ONNX file, and that file's name.

        A save in between reading the record and opening the file removes the old file; then the
        record is read again. Once open, the file stays readable to the end whatever saves follow.
        """
        for _ in range(tries):
            path = self._checked(name, self.record(name), kind)
            if path is None:
                break
            try:
                return open(path, "rb"), path.name
            except FileNotFoundError:
                continue  # replaced by a save since we read the record
        raise DamagedModel(f"model {name!r} is damaged: its {kind} file is missing")

    def load(self, name: str) -> tuple["nn.Module", dict]:
        """Rebuild the architecture and load its weights from safetensors (never a pickle)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .architectures import build
        record = self.record(name)
        try:
            model = build(record["architecture"], classes=class_count(record))
            state = load_file(str(self.file_path(name, "weights")))
            model.load_state_dict(state, strict=True)
        except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as exc:
            raise DamagedModel(f"model {name!r} is damaged: cannot load weights ({exc})") from None
        return model.eval(), record

    def onnx_path(self, name: str) -> Path:
        """The model's ONNX file, exported now from its weights if its record names none."""
        record = self.record(name)
        if record.get("onnx") is not None:
            return self.file_path(name, "onnx")  # re-reads the record: a save may have replaced the file
        from ..inference.confidence import of_record
        from .export import onnx_bytes
        model, record = self.load(name)
        record = self.save(name, model, record, onnx=onnx_bytes(model, of_record(record)["temperature"]))
        return self.folder(name) / record["onnx"]

    def list(self, damaged: bool = False) -> list[dict]:
        """All saved models' records, newest first; with `damaged`, unusable ones too, as
        `{"name", "damaged": reason}` (so the user sees them and can delete them)."""
        if not self.root.is_dir():
            return []
        records = []
        for folder in self.root.iterdir():
            if NAME_RE.fullmatch(folder.name) and (folder / RECORD).is_file():
                try:
                    records.append(self.record(folder.name))
                except StoreError as exc:
                    if damaged:
                        records.append({"name": folder.name, "damaged": str(exc), "updated": 0})
        return sorted(records, key=lambda r: r.get("updated", 0), reverse=True)

    def resolve(self, name: str | None) -> str:
        """`name` checked to exist, or the newest model when None."""
        if name is None:
            models = self.list()  # damaged ones are never "the newest"
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
        if folder.is_symlink():  # remove the link itself, never what it points to
            folder.unlink()
            return
        trash = self.root / f".deleted-{name}-{uuid.uuid4().hex[:6]}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def check_free(self, name: str, resume: str | None = None, force: bool = False) -> None:
        """Refuse to save over an existing model unless it is the one being resumed, or `force`."""
        if not force and name != resume and self.exists(name):
            raise ModelExists(f"a model named {name!r} exists; pick another name or resume it (the CLI's --force replaces it)")

    def new_name(self, dataset_name: str) -> str:
        """The default name of a new model: DATASET-DATE-TIME (made unique)."""
        return self.unique_name(f"{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}")

    def unique_name(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`... whichever is free."""
        base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-.")[:56] or "model"
        name, n = base, 1
        while self.exists(name):
            n += 1
            name = f"{base}-{n}"
        return name

