"""`digitlab serve`: pick a free port, decide on a token, print the URL, run uvicorn."""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser
from pathlib import Path

from .security import is_loopback, new_token


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


def serve(host: str = "127.0.0.1", port: int = 8000, home: Path | None = None, dataset: str = "sample",
          open_browser: bool = True, token: str | None = None, worker_threads: int = 0) -> int:
    import uvicorn

    from ..data import default_home, load_dataset
    from .app import create_app

    home = Path(home or default_home())
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
