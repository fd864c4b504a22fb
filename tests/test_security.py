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


def test_printed_url_sets_a_strict_cookie(token_server):
    assert "token=s3cret-token" in token_server.url
    with httpx.Client() as client:
        r = client.get(token_server.url)
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get(token_server.base + "/api/health").status_code == 200  # cookie now carries it


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
