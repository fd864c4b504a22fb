"""`digitlab serve`: pick a free port, decide on a token, print the URL, run uvicorn."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import webbrowser
from pathlib import Path



def free_port(host: str, start: int, tries: int = 50) -> int:
    """`start`, or the next port after it that nothing listens on."""
    for port in range(start, min(start + tries, 65536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on {host} from {start} to {start + tries - 1}")


class ServeError(Exception):
    """The server cannot start as asked; the message says why."""


def lock_home(home: Path):
    """Hold HOME/serve.lock for the life of the process: two servers on one home would each mark
    the other's running run as interrupted. Returns the open file (keep it referenced)."""
    home.mkdir(parents=True, exist_ok=True)
    fh = open(home / "serve.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise ServeError(f"another digitlab serve (pid {pid}) is using {home}; stop it or pass another --home")
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def serve(host: str = "127.0.0.1", port: int = 8000, home: Path | None = None, dataset: str = "sample",
          open_browser: bool = True, token: str | None = None, worker_threads: int = 0) -> int:
    import uvicorn

    from ..data import default_home, load_dataset
    from .app import create_app
    from .security import is_loopback, new_token

    home = Path(home or default_home())
    lock = lock_home(home)  # noqa: F841 - held until the process exits
    load_dataset(dataset, home=home, allow_download=True, progress=True)  # fail early, one line
    if not is_loopback(host) and not token:
        token = new_token()  # off loopback nobody gets in without it (Jupyter's model)
    port = free_port(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"digitlab {__import__('digitlab').__version__} serving {dataset} from {home}", file=sys.stderr)
    print(f"open {url}", flush=True)
    app = create_app(home, dataset, token=token, worker_threads=worker_threads)
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=1 << 16)
    return 0
