"""`digitlab serve`: bind the port, decide on a token, print the URL, run uvicorn on that socket."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import webbrowser
from pathlib import Path



class ServeError(Exception):
    """The server cannot start as asked; the message says why."""


def bind_socket(host: str, start: int, tries: int = 50) -> socket.socket:
    """A listening socket on `start` (0: any free port), or the next port after it that is free.

    SO_REUSEADDR lets a restarted server take back its port while old connections sit in
    TIME_WAIT, so an open tab reconnects to the same address. The socket is handed to uvicorn,
    so the printed port is the one really listening (no probe-then-bind race).
    """
    if not 0 <= start <= 65535:
        raise ServeError(f"--port must be from 0 (any free port) to 65535, got {start}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last = None
    for port in ([0] if start == 0 else range(start, min(start + tries, 65536))):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            last = exc
            if exc.errno not in (98, 48):  # EADDRINUSE (Linux, macOS): try the next port
                raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            continue
        return sock
    raise ServeError(f"no free port on {host} from {start} to {min(start + tries, 65536) - 1} ({last.strerror})")


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
          open_browser: bool = True, token: str | None = None, worker_threads: int = 0,
          allow_hosts: tuple[str, ...] = ()) -> int:
    import uvicorn

    from ..data import default_home, load_dataset
    from .app import create_app
    from .security import HostPolicy, is_loopback, new_token

    home = Path(home or default_home())
    lock = lock_home(home)  # noqa: F841 - held until the process exits
    load_dataset(dataset, home=home, allow_download=True, progress=True)  # fail early, one line
    if not is_loopback(host) and not token:
        token = new_token()  # off loopback nobody gets in without it (Jupyter's model)
    sock = bind_socket(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"digitlab {__import__('digitlab').__version__} serving {dataset} from {home}", file=sys.stderr)
    print(f"open {url}", flush=True)
    app = create_app(home, dataset, token=token, worker_threads=worker_threads,
                     hosts=HostPolicy(host, port, tuple(allow_hosts)))
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    config = uvicorn.Config(app, log_level="warning", ws_max_size=1 << 16)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
