"""Start a real `digitlab serve` process for API, fault and browser tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path, *args: str, env: dict | None = None):
        self.home = home
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "digitlab.cli", "serve", "--no-browser", "--port", str(port), "--home", str(home), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        if not line.startswith("open "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.split()[1]
        self.base = self.url.split("?")[0].rstrip("/")
        self.client = httpx.Client(base_url=self.base, timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.client.get("/api/health").status_code in (200, 401):
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        self.wait_worker()

    def worker_pid(self) -> int | None:
        """The training worker: the server's child process (multiprocessing spawn)."""
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                    return int(pid)
        return None

    def wait_worker(self, timeout: float = 30, not_pid: int | None = None) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid = self.worker_pid()
            if pid and pid != not_pid:
                return pid
            time.sleep(0.05)
        raise TimeoutError("no training worker process")

    def ws_url(self, run: str) -> str:
        return self.base.replace("http", "ws", 1) + f"/api/runs/{run}/events"

    def wait_run(self, run: str, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            record = self.client.get(f"/api/runs/{run}").json()
            if record["state"] != "running":
                return record
            time.sleep(0.1)
        raise TimeoutError(f"run {run} still running")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()


@contextlib.contextmanager
def serving(home: Path, *args: str, models_from: Path | None = None):
    """A running server on `home` (given a copy of the models in `models_from`), stopped afterwards."""
    if models_from is not None:
        shutil.copytree(models_from / "models", home / "models")
    srv = Server(home, *args)
    try:
        yield srv
    finally:
        srv.stop()
