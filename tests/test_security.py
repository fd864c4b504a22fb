"""Nobody let in: token off loopback, same-origin WebSockets, strict headers."""

import asyncio

import httpx
import pytest
import websockets

from server_util import Server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("tok"), "--token", "s3cret-token")
    yield srv
    srv.stop()


def test_requests_without_the_token_are_refused(token_server):
    base = token_server.base
    for method, path in [("GET", "/"), ("GET", "/api/health"), ("GET", "/api/models"), ("POST", "/api/runs"),
                         ("GET", "/static/app.js"), ("GET", "/openapi.json")]:
        r = httpx.request(method, base + path)
        assert r.status_code == 401, (path, r.status_code)
        assert "access token" in r.json()["error"]
    assert httpx.get(base + "/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(base + "/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_printed_url_sets_a_strict_cookie_and_leaves_the_address_bar(token_server):
    assert "token=s3cret-token" in token_server.url
    with httpx.Client() as client:
        r = client.get(token_server.url)
        assert r.status_code == 303 and r.headers["location"] == "/"  # the token leaves the address bar
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get(token_server.base + "/").status_code == 200  # the cookie now carries it
        assert client.get(token_server.base + "/api/health").status_code == 200
        r = client.get(token_server.base + "/?token=s3cret-token&tab=draw")
        assert r.status_code == 303 and r.headers["location"] == "/?tab=draw"


def test_websocket_needs_token_and_same_origin(token_server):
    ws = token_server.ws_url("nope")

    async def attempt(url, headers):
        try:
            async with websockets.connect(url, additional_headers=headers) as conn:
                return (await conn.recv())
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
    host = token_server.base.split("//")[1]
    auth = {"Authorization": "Bearer s3cret-token"}
    assert asyncio.run(attempt(ws, {})) == 403
    assert asyncio.run(attempt(ws, {**auth, "Origin": "http://evil.example"})) == 403
    assert "no run" in asyncio.run(attempt(ws, {**auth, "Origin": f"http://{host}"}))


def test_binding_beyond_loopback_generates_a_token(tmp_path):
    srv = Server(tmp_path, "--host", "0.0.0.0")
    try:
        assert "?token=" in srv.url
        assert httpx.get(srv.base.replace("0.0.0.0", "127.0.0.1") + "/api/health").status_code == 401
    finally:
        srv.stop()


def test_loopback_default_has_headers_and_no_cors(tmp_path):
    srv = Server(tmp_path)
    try:
        assert srv.url.startswith("http://127.0.0.1:") and "token" not in srv.url
        r = srv.client.get("/api/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        assert "'unsafe-inline'" not in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    finally:
        srv.stop()


def test_second_server_on_the_same_home_is_refused(tmp_path):
    import subprocess
    import sys
    srv = Server(tmp_path)
    try:
        proc = subprocess.run([sys.executable, "-m", "digitlab.cli", "serve", "--no-browser", "--home", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert f"another digitlab serve (pid {srv.proc.pid}) is using" in proc.stderr
        assert srv.client.get("/api/health").status_code == 200
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("local"), "--allow-host", "digitlab.lan")
    yield srv
    srv.stop()


def _port(srv) -> int:
    return int(srv.base.rsplit(":", 1)[1])


def test_dns_rebinding_foreign_host_is_refused(local_server):
    """A page at attacker.example whose name resolves to 127.0.0.1 must not reach the API."""
    port = _port(local_server)
    base = local_server.base
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1:{port + 1}", f"localhost.evil:{port}",
                 f"127.0.0.1:{port}@evil", ""):
        r = httpx.get(base + "/api/models", headers={"Host": host})
        assert r.status_code == 403, (host, r.status_code)
        assert "Host" in r.json()["error"]
    r = httpx.delete(base + "/api/models/x", headers={"Host": f"attacker.example:{port}",
                                                     "Origin": f"http://attacker.example:{port}"})
    assert r.status_code == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"digitlab.lan:{port}"):
        assert httpx.get(base + "/api/health", headers={"Host": host}).status_code == 200, host


def test_dns_rebinding_websocket_is_refused(local_server):
    port = _port(local_server)
    url = local_server.ws_url("nope")

    async def attempt(headers):
        try:
            async with websockets.connect(url, additional_headers=headers) as conn:
                return await conn.recv()
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
    evil = f"attacker.example:{port}"
    # websockets sets Host from the URL; override it by connecting through a raw socket instead
    import socket
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall((f"GET /api/runs/nope/events HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        reply = sock.recv(1024).decode("latin-1")
    assert reply.startswith("HTTP/1.1 403"), reply
    assert "no run" in asyncio.run(attempt({"Origin": local_server.base}))


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example", "Content-Type": "text/plain"},
    {"Origin": "null", "Content-Type": "text/plain"},
    {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
    {"Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"},
])
def test_cross_site_simple_requests_change_nothing(local_server, headers):
    import io

    from strokes import render
    buf = io.BytesIO()
    render(7).save(buf, format="PNG")
    png = buf.getvalue()
    client = local_server.client
    for method, path, body in [("POST", "/api/runs/abc/cancel", b""), ("POST", "/api/runs", b'{"epochs": 1}'),
                               ("POST", "/api/models/base/predict", png), ("DELETE", "/api/models/base", b""),
                               ("POST", "/api/drawings?label=3", png)]:
        r = client.request(method, path, content=body, headers=headers)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "cross-origin" in r.json()["error"]
    assert client.get("/api/runs").json()["runs"] == []


def test_same_origin_page_requests_pass(local_server):
    base = local_server.base
    r = local_server.client.post("/api/runs/abc/cancel", headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 404  # reached the route: no such run


def test_unknown_routes_answer_error_json_and_docs_are_gone(local_server):
    for method, path, status in [("GET", "/api/nope", 404), ("GET", "/docs", 404), ("GET", "/redoc", 404),
                                 ("PUT", "/api/health", 405)]:
        r = local_server.client.request(method, path)
        assert r.status_code == status, path
        assert set(r.json()) == {"error"}, r.text
    assert local_server.client.get("/openapi.json").status_code == 200
