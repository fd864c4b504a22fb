"""The user's taught drawings: stored one by one, listed in SQLite, and a dataset like any other.

On disk (HOME/drawings/): each drawing is two files named by a random key, `KEY.idx` (its 28x28
model input, a one-image IDX file) and `KEY.png` (the pad as drawn, grayscale, long side at most
560). A row of the server's database (server/db.py, table `drawings`) lists it: id, label, the
model that read it, what that model read, the input's SHA-256, when.

Integrity:
- every file is written to a temporary name, fsynced, then renamed (os.replace), and the row is
  inserted only after both files are in place: the insert is the commit point. A crash before it
  leaves unlisted files, which `remove_orphans` (at server start) deletes; a crash after it, a
  whole drawing. Concurrent posts never share a file; SQLite serialises the inserts.
- a delete removes the row first, then the files: a crash in between leaves only orphans.
- every read checks the input file (IDX header, shape, SHA-256 against the row): a missing,
  corrupt or altered file marks that one drawing `damaged` with the reason; it is listed (so it
  can be deleted), never trained on or exported, and the others are unaffected.

Held out, deterministically: within each digit, in the order taught, the 2nd, 7th, 12th, ...
drawing (every HOLDOUT_EVERY-th, starting with the second), so a digit drawn at least twice
always has one to measure on and the first one is always learned from.

`with_drawings(base, drawings)` mixes the drawings into a base dataset for fine-tuning:
oversampled to about SHARE of each epoch, so a few dozen count against thousands of images.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from .datasets import STEMS, Dataset
from .idx import DatasetError, idx_bytes, parse_idx

__all__ = ["Drawing", "DrawingIndex", "DrawingStore", "DrawingNotFound", "heldout_mask", "with_drawings",
           "HOLDOUT_EVERY", "SHARE"]

FOLDER = "drawings"
HOLDOUT_EVERY = 5
SHARE = 0.15  # of each fine-tuning epoch's images that are drawings (oversampled)
PNG_SIDE = 560  # the stored pad image's longest side at most (the page's pad is 280)
ORPHAN_AGE = 60.0  # seconds: younger unlisted files may belong to a post in progress
KEY_RE = re.compile(r"[0-9a-f]{16}")  # a row's key names its files; anything else is never followed


class DrawingNotFound(KeyError):
    """No drawing with that id."""

    def __str__(self) -> str:
        return self.args[0]


class DrawingIndex(Protocol):
    """Where drawings are listed: the server's RunDB (server/db.py) has these methods."""

    def add_drawing(self, key: str, label: int, model: str | None, predicted: int | None, sha256: str) -> dict: ...
    def drawings(self) -> list[dict]: ...
    def drawing(self, drawing: int) -> dict | None: ...
    def delete_drawing(self, drawing: int) -> dict | None: ...


@dataclass
class Drawing:
    id: int
    label: int
    model: str | None
    predicted: int | None
    created: float
    key: str
    sha256: str
    heldout: bool = False
    damaged: str | None = None  # why its input cannot be used
    pixels: np.ndarray | None = None  # (28, 28) uint8, white digit on black; None when damaged

    def to_dict(self) -> dict:
        out = {"id": self.id, "label": self.label, "model": self.model, "predicted": self.predicted,
               "created": self.created, "heldout": self.heldout}
        if self.damaged:
            out["damaged"] = self.damaged
        return out


def heldout_mask(labels) -> np.ndarray:
    """Which drawings (labels in the order taught) are held out: per label the 2nd, 7th, 12th, ..."""
    labels = np.asarray(labels, dtype=np.int64)
    mask = np.zeros(len(labels), dtype=bool)
    seen: dict[int, int] = {}
    for i, label in enumerate(labels.tolist()):
        k = seen.get(label, 0)
        mask[i] = k % HOLDOUT_EVERY == 1
        seen[label] = k + 1
    return mask


def as_input_bytes(x28: np.ndarray) -> np.ndarray:
    """The model input (28, 28) floats in [0, 1] (or uint8) -> uint8, as the datasets hold images."""
    x = np.asarray(x28)
    if x.shape != (28, 28):
        raise ValueError(f"a drawing's input is 28x28, got {x.shape}")
    if x.dtype == np.uint8:
        return x.copy()
    return np.clip(np.floor(x.astype(np.float64) * 255 + 0.5), 0, 255).astype(np.uint8)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DrawingStore:
    """The drawings of one home: files under HOME/drawings, rows in `index` (the server's RunDB)."""

    def __init__(self, home: str | os.PathLike, index: DrawingIndex):
        self.folder = Path(home) / FOLDER
        self.index = index

    # ---- writing -------------------------------------------------------------------------------
    def add(self, x28: np.ndarray, png: bytes, label: int, model: str | None = None,
            predicted: int | None = None) -> Drawing:
        """Store a drawing: its model input (28x28), the pad as PNG bytes, its true label."""
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) <= 9:
            raise ValueError(f"label must be a digit 0-9, got {label!r}")
        pixels = as_input_bytes(x28)
        if not pixels.any():
            raise ValueError("nothing drawn: the drawing is empty")
        self.folder.mkdir(parents=True, exist_ok=True)
        key = uuid.uuid4().hex[:16]
        sha = hashlib.sha256(pixels.tobytes()).hexdigest()
        try:
            _write_atomic(self.folder / f"{key}.idx", idx_bytes(pixels[None]))
            _write_atomic(self.folder / f"{key}.png", png)
            _fsync_dir(self.folder)
            row = self.index.add_drawing(key, int(label), model, None if predicted is None else int(predicted), sha)
        except BaseException:  # a full disk, an unwritable home: nothing of it stays
            self._remove_files(key)
            raise
        return self._drawing(row, pixels)

    def delete(self, drawing: int) -> Drawing:
        row = self.index.delete_drawing(drawing)
        if row is None:
            raise DrawingNotFound(f"no drawing {drawing}")
        self._remove_files(row["key"])
        return self._drawing(row, None)

    def _remove_files(self, key: str) -> None:
        if not KEY_RE.fullmatch(str(key)):
            return
        for suffix in (".idx", ".png"):
            try:
                (self.folder / f"{key}{suffix}").unlink(missing_ok=True)
            except OSError:
                pass  # an orphan now; remove_orphans takes it later

    def remove_orphans(self, min_age: float = ORPHAN_AGE) -> int:
        """Delete files no row lists (a crash before the insert, or after a delete's), older than
        `min_age` seconds: younger ones may belong to a post in progress. Returns how many."""
        if not self.folder.is_dir():
            return 0
        keys = {row["key"] for row in self.index.drawings()}
        now, removed = time.time(), 0
        for path in self.folder.iterdir():
            stem = path.name.lstrip(".").split(".", 1)[0]
            if path.is_dir() or (stem in keys and ".tmp-" not in path.name):
                continue
            try:
                if now - path.lstat().st_mtime >= min_age:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    # ---- reading -------------------------------------------------------------------------------
    def _drawing(self, row: dict, pixels: np.ndarray | None, damaged: str | None = None) -> Drawing:
        return Drawing(row["id"], row["label"], row["model"], row["predicted"], row["created"], row["key"],
                       row["sha256"], damaged=damaged, pixels=pixels)

    def _load(self, row: dict) -> Drawing:
        """The row with its pixels, or marked damaged with the reason (never an exception)."""
        if not KEY_RE.fullmatch(str(row["key"])):
            return self._drawing(row, None, "its record names no valid file")
        path = self.folder / f"{row['key']}.idx"
        try:
            if path.is_symlink() or not path.is_file():
                raise DatasetError("its input file is missing")
            with open(path, "rb") as fh:
                data = fh.read(64 << 10)
            arr = parse_idx(data, path.name)
            if arr.shape != (1, 28, 28):
                raise DatasetError(f"{path.name}: expected one 28x28 image, got shape {arr.shape}")
            pixels = arr[0].copy()
            if hashlib.sha256(pixels.tobytes()).hexdigest() != row["sha256"]:
                raise DatasetError(f"{path.name}: the pixels changed since it was saved (checksum mismatch)")
        except DatasetError as exc:
            return self._drawing(row, None, str(exc))
        except OSError as exc:
            return self._drawing(row, None, f"{path.name}: unreadable ({exc.strerror or exc})")
        return self._drawing(row, pixels)

    def list(self) -> list[Drawing]:
        """Every drawing, oldest first, with its pixels and held-out flag (damaged ones: the reason).

        The held-out rule counts the usable drawings only, so a damaged one never leaves a digit
        without a held-out drawing."""
        drawings = [self._load(row) for row in self.index.drawings()]
        usable = [d for d in drawings if not d.damaged]
        for d, held in zip(usable, heldout_mask([d.label for d in usable])):
            d.heldout = bool(held)
        return drawings

    def png_path(self, drawing: int) -> Path:
        row = self.index.drawing(drawing)
        if row is None:
            raise DrawingNotFound(f"no drawing {drawing}")
        path = self.folder / f"{row['key']}.png"
        if not KEY_RE.fullmatch(str(row["key"])) or path.is_symlink():
            raise FileNotFoundError(f"drawing {drawing} names no valid file")  # never followed
        return path

    def dataset(self, drawings: list[Drawing] | None = None, name: str = "drawings") -> Dataset:
        """The usable drawings (of `drawings`, default: `list()`) as a Dataset: train = the learned
        ones, test = the held-out ones (either may be empty). DatasetError when there is none."""
        usable = [d for d in (self.list() if drawings is None else drawings) if not d.damaged]
        if not usable:
            raise DatasetError("no drawings yet: teach some on the Draw card (or POST /api/drawings)")

        def split(held: bool):
            part = [d for d in usable if d.heldout == held]
            images = np.stack([d.pixels for d in part]) if part else np.zeros((0, 28, 28), np.uint8)
            return images, np.array([d.label for d in part], dtype=np.uint8)
        return Dataset(name, *split(False), *split(True), source=str(self.folder), spec=str(self.folder))

    def export(self, folder: str | os.PathLike) -> dict:
        """Write the usable drawings as an IDX dataset folder (train: learned, t10k: held out), for
        `digitlab train --dataset FOLDER`. Needs a held-out drawing (a digit taught twice)."""
        drawings = self.list()
        ds = self._exportable(drawings)
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise DatasetError(f"{folder}: exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        for stem, array in zip(STEMS, (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels)):
            _write_atomic(folder / stem, idx_bytes(array))
        _fsync_dir(folder)
        return {"folder": str(folder), "train": int(len(ds.train_labels)), "test": int(len(ds.test_labels)),
                "damaged": sum(1 for d in drawings if d.damaged)}

    def export_files(self) -> dict[str, bytes]:
        """The same four IDX files as `export`, in memory (for a download)."""
        ds = self._exportable(self.list())
        return {stem: idx_bytes(a) for stem, a in
                zip(STEMS, (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels))}

    def _exportable(self, drawings: list[Drawing]) -> Dataset:
        ds = self.dataset(drawings)
        if not len(ds.test_labels):
            raise DatasetError("an IDX folder needs a test split: teach at least one digit twice "
                               "(its second drawing is held out)")
        return ds


def with_drawings(base: Dataset, drawings: Dataset, share: float = SHARE) -> Dataset:
    """`base` with the drawings' training split added, each drawing repeated so that together they
    make about `share` of an epoch; the test split stays `base`'s (the accuracy a run reports is
    still the base test accuracy). The training loop shuffles and augments the copies like the rest."""
    n, d = len(base.train_labels), len(drawings.train_labels)
    if d == 0:
        raise DatasetError("no drawings to learn from: every usable drawing is held out")
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    repeat = max(1, round(share / (1 - share) * n / d))
    images = np.concatenate([base.train_images, np.tile(drawings.train_images, (repeat, 1, 1))])
    labels = np.concatenate([base.train_labels, np.tile(drawings.train_labels.astype(base.train_labels.dtype), repeat)])
    return replace(base, train_images=images, train_labels=labels,
                   source=f"{base.source} + {d} drawing{'s' * (d != 1)} x{repeat}")
