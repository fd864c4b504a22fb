"""A local HTTP mirror for the download tests: serves files whole, corrupted, cut short, or slowly."""

from __future__ import annotations

import http.server
import threading
import time


class Mirror:
    """Serves `files` (name -> bytes) under `url`; `mode`: ok, corrupt (last byte flipped), truncated
    (half the announced bytes); `rate`: bytes per second (None: as fast as it can), in 64 KiB chunks."""

    def __init__(self, files: dict[str, bytes], mode: str = "ok", rate: float | None = None):
        outer = self
        self.files, self.mode, self.rate = files, mode, rate
        self.hits: list[str] = []
        self.aborted = 0  # responses the client stopped reading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.hits.append(name)
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.mode == "corrupt":
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                elif outer.mode == "truncated":
                    body = body[: len(body) // 2]
                step = 1 << 16
                try:
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        if outer.rate:
                            time.sleep(step / outer.rate)
                except (BrokenPipeError, ConnectionResetError):
                    outer.aborted += 1

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/data/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
