"""Who may talk to the server: its own Host names only, same-origin writes, a token off loopback, strict headers.

A web page the user visits must never reach this server. DNS rebinding (a page whose name
resolves to 127.0.0.1) is stopped by the Host allow-list; cross-site form posts and `fetch`es
with a "simple" content type by the Origin / Sec-Fetch-Site check on every state-changing
request and every WebSocket.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "digitlab_token"
# 'wasm-unsafe-eval' lets onnxruntime-web compile its WebAssembly; no inline or eval'd scripts.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _query_token(scope: Scope) -> str | None:
    from urllib.parse import parse_qs
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> tuple[str, int | None]:
    """`name:port` / `[v6]:port` / `name` -> (lower-case name, port or None); ("", None) if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return "", None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, _, port = value.partition(":")
        rest = f":{port}" if _ else ""
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return "", None
    return name, int(rest[1:])


class HostPolicy:
    """Which `Host` headers name this server: the bound address, the loopback names, `--allow-host`.

    Bound to a wildcard address (0.0.0.0, ::), any IP literal is accepted as well: a browser sends
    an IP literal only for a page it loaded from that very address, whereas DNS rebinding needs a
    name. Names (the machine's included) must still be listed with `--allow-host`.
    """

    def __init__(self, bound: str, port: int, extra: tuple[str, ...] = ()):
        self.port = port
        bound = bound.strip().lower()
        self.any_ip = bound in WILDCARDS
        shown = f"[{bound.strip('[]')}]" if ":" in bound else bound
        self.names = {n.lower() for n in (*LOOPBACK_NAMES, *extra)} | ({shown} if not self.any_ip else set())

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name, port = split_host(host_header)
        if not name or (port if port is not None else 80) != self.port:
            return False
        if name in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
        return False


def same_origin(scope: Scope) -> bool:
    """False when a browser says the request comes from another site or origin.

    Browsers send `Origin` on cross-origin requests and on every POST, and `Sec-Fetch-Site` on
    all requests; clients that send neither (the CLI, scripts, curl) are not web pages.
    """
    site = _header(scope, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = (_header(scope, b"host") or "").lower()
    return origin.lower() in (f"http://{host}", f"https://{host}")


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *HEADERS]})
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """Checks every request before the app sees it, and adds the security headers to every answer.

    1. `Host` must name this server (HostPolicy), on HTTP and WebSocket alike: 403.
    2. With a token: `Authorization: Bearer T`, the HttpOnly SameSite=Strict cookie, or `?token=T`
       (what the printed URL holds; answered with the cookie and a redirect to the bare URL): 401.
    3. State-changing methods and WebSockets only from this server's own origin: 403.
    """

    def __init__(self, app: ASGIApp, token: str | None, hosts: HostPolicy | None = None):
        self.app, self.token, self.hosts = app, token, hosts

    def _authorised(self, scope: Scope) -> tuple[bool, bool]:
        """(let in, the right token came in the query string)."""
        if not self.token:
            return True, False
        auth = _header(scope, b"authorization") or ""
        candidates = [auth[7:] if auth.lower().startswith("bearer ") else None, _cookie(scope, COOKIE)]
        from_query = _query_token(scope)
        in_query = bool(from_query) and hmac.compare_digest(from_query.encode(), self.token.encode())
        for candidate in candidates:
            if candidate and hmac.compare_digest(candidate.encode(), self.token.encode()):
                return True, in_query
        return in_query, in_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host_ok = self.hosts is None or self.hosts.allows(_header(scope, b"host"))
        ok, set_cookie = self._authorised(scope)
        if scope["type"] == "websocket":
            if not host_ok or not ok or not same_origin(scope):
                await send({"type": "websocket.close", "code": 4403, "reason": "forbidden"})
                return
            return await self.app(scope, receive, send)
        if not host_ok:
            return await _refuse(send, 403, "unknown Host header: this server answers only to its own address "
                                            "(add names with `digitlab serve --allow-host NAME`)")
        if not ok:
            return await _refuse(send, 401, "missing or wrong access token: open the URL that digitlab serve printed")
        if scope["method"] in UNSAFE_METHODS and not same_origin(scope):
            return await _refuse(send, 403, "cross-origin request refused: only this app's own page may change things")
        if set_cookie and scope["method"] in ("GET", "HEAD"):
            # the token goes into the cookie and out of the address bar (and the history)
            cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()
            query = "&".join(p for p in scope.get("query_string", b"").decode("latin-1").split("&")
                             if p and not p.startswith("token="))
            path = scope.get("raw_path") or scope["path"].encode()
            location = path + (f"?{query}".encode("latin-1") if query else b"")
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location), (b"set-cookie", cookie),
                                    (b"content-length", b"0"), *HEADERS]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + HEADERS
                if set_cookie:
                    headers.append((b"set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
