"""Dataset downloads started from the page: one background thread per dataset, progress polled, cancel.

The download itself is `data.download.download()`, the CLI's own (same mirrors, same checksums,
same atomic writes into the cache); this module only runs it off the event loop and keeps the
latest Progress where a route can read it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..data import DatasetError
from ..data.datasets import REMOTES, cached_folder, local_folder, remote_for
from ..data.download import DownloadCancelled, Progress, download


class DownloadRefused(Exception):
    """The download cannot start (one is under way, or the data is already here); the message says why."""


class Downloads:
    """The downloadable datasets' downloads: start, status, cancel. Thread-safe."""

    def __init__(self, home: Path):
        self.home = home
        self._lock = threading.Lock()
        self._status: dict[str, dict] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}

    def status(self, name: str) -> dict:
        """{dataset, state: idle|running|finished|failed|cancelled, file, files_done, files, done, total, error}."""
        with self._lock:
            status = self._status.get(name)
            if status is not None:
                return dict(status)
        here = local_folder(name, self.home) is not None
        return {"dataset": name, "state": "finished" if here else "idle", "file": None, "files_done": 0,
                "files": len(REMOTES[name].files), "done": 0, "total": size_of(name), "error": None}

    def start(self, name: str) -> dict:
        """Start downloading `name` in a background thread; raises DownloadRefused."""
        with self._lock:
            current = self._status.get(name)
            if current is not None and current["state"] == "running":
                raise DownloadRefused(f"{name} is already downloading")
            if local_folder(name, self.home) is not None:
                raise DownloadRefused(f"{name} is already on this machine")
            cancel = threading.Event()
            self._cancel[name] = cancel
            self._status[name] = {"dataset": name, "state": "running", "file": None, "files_done": 0,
                                  "files": len(REMOTES[name].files), "done": 0, "total": size_of(name),
                                  "error": None, "started": time.time()}
            thread = threading.Thread(target=self._run, args=(name, cancel), name=f"download-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
            return dict(self._status[name])

    def cancel(self, name: str) -> bool:
        """Ask the download of `name` to stop before its next chunk; False if none is running."""
        with self._lock:
            status = self._status.get(name)
            if status is None or status["state"] != "running":
                return False
            self._cancel[name].set()
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every download and wait for their threads (partial files are removed by download())."""
        with self._lock:
            for event in self._cancel.values():
                event.set()
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _update(self, name: str, **fields) -> None:
        with self._lock:
            self._status[name].update(fields)

    def _run(self, name: str, cancel: threading.Event) -> None:
        def on_progress(p: Progress) -> None:
            self._update(name, file=p.file, files_done=p.files_done, files=p.files, done=p.done, total=p.total)

        try:
            download(remote_for(name), cached_folder(name, self.home), progress=False,
                     on_progress=on_progress, cancelled=cancel.is_set)
        except DownloadCancelled:
            self._update(name, state="cancelled", error=None, ended=time.time())
        except DatasetError as exc:
            self._update(name, state="failed", error=str(exc), ended=time.time())
        except Exception as exc:  # noqa: BLE001 (a full disk, a permission): reported, never a silent thread death
            self._update(name, state="failed", error=f"{name}: {type(exc).__name__}: {exc}", ended=time.time())
        else:
            self._update(name, state="finished", error=None, ended=time.time())


def size_of(name: str) -> int | None:
    """The published size of a remote dataset's files together, if every one is known."""
    sizes = [f.size for f in REMOTES[name].files]
    return sum(sizes) if all(s is not None for s in sizes) else None
