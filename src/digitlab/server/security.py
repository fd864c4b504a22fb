"""Who may talk to the server: an access token off loopback, same-origin WebSockets, strict headers."""

from __future__ import annotations

import hmac
import ipaddress
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


def origin_allowed(scope: Scope) -> bool:
    """A WebSocket's Origin (when a browser sends one) must be this server's own origin."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True  # not a browser (CLI, scripts): the token, if any, still applies
    host = _header(scope, b"host") or ""
    return origin in (f"http://{host}", f"https://{host}")


class SecurityMiddleware:
    """Adds the security headers; with a token, refuses every request that does not carry it.

    The token may come as `Authorization: Bearer T`, a `?token=T` query (what the printed URL
    holds; the page then keeps it in an HttpOnly, SameSite=Strict cookie) or that cookie.
    """

    def __init__(self, app: ASGIApp, token: str | None):
        self.app, self.token = app, token

    def _authorised(self, scope: Scope) -> tuple[bool, bool]:
        if not self.token:
            return True, False
        auth = _header(scope, b"authorization") or ""
        candidates = [auth[7:] if auth.lower().startswith("bearer ") else None, _cookie(scope, COOKIE)]
        from_query = _query_token(scope)
        for candidate in candidates:
            if candidate and hmac.compare_digest(candidate.encode(), self.token.encode()):
                return True, False
        if from_query and hmac.compare_digest(from_query.encode(), self.token.encode()):
            return True, True
        return False, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        ok, set_cookie = self._authorised(scope)
        if scope["type"] == "websocket":
            if not ok or not origin_allowed(scope):
                await send({"type": "websocket.close", "code": 4403, "reason": "forbidden"})
                return
            return await self.app(scope, receive, send)
        if not ok:
            body = b'{"error": "missing or wrong access token: open the URL that digitlab serve printed"}'
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), *HEADERS]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + HEADERS
                if set_cookie:
                    headers.append((b"set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
