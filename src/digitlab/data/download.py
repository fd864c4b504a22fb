"""Fetch dataset files from public mirrors: progress (bar or callback), cancel, checksum, atomic write into a cache."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from .idx import DatasetError

#: Largest file we accept from a mirror; the biggest real one is 26 MB.
MAX_DOWNLOAD = 256 << 20
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote dataset, its published checksum ("sha256:..." or "md5:...") and size in bytes if known."""

    name: str
    checksum: str
    size: Optional[int] = None

    def matches(self, path: Path) -> bool:
        algo, _, expected = self.checksum.partition(":")
        digest = hashlib.new(algo)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == expected


@dataclass(frozen=True)
class RemoteDataset:
    """Where a dataset can be downloaded from (mirrors tried in order) and what it must hash to."""

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]


class DownloadCancelled(DatasetError):
    """The caller's cancel check said stop; nothing partial was left in the cache."""


@dataclass(frozen=True)
class Progress:
    """Where a download() stands, as told to its `on_progress` callback (a few times a second at most).

    `done` and `total` count the bytes of the files still missing when it began (cached ones are
    skipped); `total` is None when a file's size is neither published nor announced by the mirror.
    A retry on the next mirror starts its file's bytes over.
    """

    file: str
    files_done: int
    files: int
    done: int
    total: Optional[int]


def _fetch_one(url: str, dest: Path, progress: bool, timeout: float,
               on_bytes: Callable[[int, Optional[int]], None] = lambda done, total: None,
               cancelled: Callable[[], bool] = lambda: False) -> None:
    """Stream `url` into `dest` (a temp path), raising OSError-like errors on any failure.

    `on_bytes(done, announced)` follows each chunk; `cancelled()` is asked before each chunk.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https mirrors)
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD:
            raise OSError(f"server announces {total} bytes, more than {MAX_DOWNLOAD}")
        done = 0
        on_bytes(0, total)
        with open(dest, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0].lstrip("."),
            disable=not progress, leave=False,
        ) as bar:
            while True:
                if cancelled():
                    raise DownloadCancelled("download cancelled")
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                done += len(chunk)
                if done > MAX_DOWNLOAD:
                    raise OSError(f"response larger than {MAX_DOWNLOAD} bytes")
                out.write(chunk)
                bar.update(len(chunk))
                on_bytes(done, total)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise OSError(f"truncated response: {done} of {total} bytes")


def download(remote: RemoteDataset, folder: Path, progress: bool = True, timeout: float = 30.0,
             on_progress: Optional[Callable[[Progress], None]] = None,
             cancelled: Optional[Callable[[], bool]] = None, every: float = 0.1) -> Path:
    """Make sure every file of `remote` is in `folder`, verified; download what is missing.

    Each file is written to a temporary name, checked against its published checksum, and
    only then renamed into place, so the cache never holds a partial or corrupt file.
    `progress` draws a terminal bar (the CLI); `on_progress` gets a Progress at most every
    `every` seconds and at each file's start and end (the server's page); `cancelled()` is
    checked before every chunk, and a True answer raises DownloadCancelled, leaving the
    files finished so far in the cache and no partial one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    is_cancelled = cancelled or (lambda: False)
    missing = [f for f in remote.files if not ((folder / f.name).exists() and f.matches(folder / f.name))]
    sizes = {f.name: f.size for f in missing}
    finished = 0  # bytes of the missing files already in place
    last_told = [0.0]

    def tell(file: RemoteFile, index: int, done: int, force: bool = False) -> None:
        if on_progress is None:
            return
        now = time.monotonic()
        if not force and now - last_told[0] < every:
            return
        last_told[0] = now
        total = sum(sizes.values()) if all(v is not None for v in sizes.values()) else None
        on_progress(Progress(file.name, index, len(missing), finished + done, total))

    for index, file in enumerate(missing):
        target = folder / file.name
        tmp = folder / f".{file.name}.part{os.getpid()}-{threading.get_ident()}"
        problems = []
        tell(file, index, 0, force=True)

        def on_bytes(done: int, announced: Optional[int], file=file, index=index) -> None:
            if file.size is None and announced is not None:
                sizes[file.name] = announced
            tell(file, index, done)

        try:
            for mirror in remote.mirrors:
                url = mirror.rstrip("/") + "/" + file.name
                try:
                    _fetch_one(url, tmp, progress, timeout, on_bytes, is_cancelled)
                except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
                    reason = getattr(exc, "reason", None) or exc
                    problems.append(f"{url}: {reason}")
                    continue
                if file.matches(tmp):
                    os.replace(tmp, target)
                    break
                problems.append(f"{url}: checksum mismatch (expected {file.checksum})")
            else:
                raise DatasetError(
                    f"{remote.name}: could not download {file.name} (offline?); tried " + "; ".join(problems)
                )
        finally:
            tmp.unlink(missing_ok=True)  # gone once renamed; else partial or corrupt
        finished += target.stat().st_size
        sizes[file.name] = target.stat().st_size
        tell(file, index + 1, 0, force=True)
    return folder
