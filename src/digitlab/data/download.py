"""Fetch dataset files from public mirrors: progress bar, checksum, atomic write into a cache."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .idx import DatasetError

#: Largest file we accept from a mirror; the biggest real one is 26 MB.
MAX_DOWNLOAD = 256 << 20
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote dataset and its published checksum ("sha256:..." or "md5:...")."""

    name: str
    checksum: str

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


def _fetch_one(url: str, dest: Path, progress: bool, timeout: float) -> None:
    """Stream `url` into `dest` (a temp path), raising OSError-like errors on any failure."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https mirrors)
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD:
            raise OSError(f"server announces {total} bytes, more than {MAX_DOWNLOAD}")
        done = 0
        with open(dest, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0].lstrip("."),
            disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                done += len(chunk)
                if done > MAX_DOWNLOAD:
                    raise OSError(f"response larger than {MAX_DOWNLOAD} bytes")
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise OSError(f"truncated response: {done} of {total} bytes")


def download(remote: RemoteDataset, folder: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Make sure every file of `remote` is in `folder`, verified; download what is missing.

    Each file is written to a temporary name, checked against its published checksum, and
    only then renamed into place, so the cache never holds a partial or corrupt file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for file in remote.files:
        target = folder / file.name
        if target.exists() and file.matches(target):
            continue
        tmp = folder / f".{file.name}.part{os.getpid()}"
        problems = []
        for mirror in remote.mirrors:
            url = mirror.rstrip("/") + "/" + file.name
            try:
                _fetch_one(url, tmp, progress, timeout)
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                problems.append(f"{url}: {reason}")
                continue
            if file.matches(tmp):
                os.replace(tmp, target)
                break
            problems.append(f"{url}: checksum mismatch (expected {file.checksum})")
        else:
            tmp.unlink(missing_ok=True)
            raise DatasetError(
                f"{remote.name}: could not download {file.name} (offline?); tried " + "; ".join(problems)
            )
    return folder
