"""A server you can expose: Host names, origins, message limits and timeouts, on a real uvicorn server.

Probed as a rebinding web page, a foreign page, a careless and a hostile client would, all on
loopback; the raw-socket WebSocket helpers are benchmarks/load.py's own (its abuse mode).
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

import httpx  # noqa: E402

from emolens.assets import ASTRONAUT  # noqa: E402
from emolens.serve import ServeSettings, create_app  # noqa: E402
from emolens.serve.background import serve_in_thread  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

APP_ORIGIN = "https://app.example.com"
MB = 1024 * 1024
LIMIT = 256 * 1024          # WebSocket message limit of the server under test


def _load_bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "load.py"
    spec = importlib.util.spec_from_file_location("emolens_bench_load", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def server(tiny_model):
    settings = ServeSettings(model=str(tiny_model), max_frame_bytes=LIMIT, header_timeout_s=1.0,
                             body_timeout_s=1.5, allow_origins=[APP_ORIGIN], allow_hosts=["emolens.example.org"])
    with serve_in_thread(create_app(settings)) as running:
        yield running


def upload(url: str, headers: dict | None = None, timeout: float = 30) -> httpx.Response:
    files = {"file": ("face.jpg", ASTRONAUT.read_bytes(), "image/jpeg")}
    return httpx.post(url + "/v1/predict", files=files, headers=headers or {}, timeout=timeout)


# ---------------------------------------------------------------- Host names (DNS rebinding)

@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000", "emolens.example.org"])
def test_loopback_and_allowed_host_names_are_answered(server, host):
    r = httpx.get(server.url + "/healthz", headers={"host": host})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example:8000", "attacker.test", "127.0.0.1.nip.io", "localhost.evil", "[::1"])
def test_other_host_names_get_421(server, host):
    for path in ("/healthz", "/", "/v1/models"):
        r = httpx.get(server.url + path, headers={"host": host})
        assert r.status_code == 421, (host, path, r.status_code)
        assert r.json()["error"]["code"] == "misdirected_request"
    sock, status = bench.ws_open("127.0.0.1", server.port, origin=f"http://{host}")
    sock.close()
    assert status == 403


def test_host_check_is_off_on_a_public_bind_unless_names_are_given(tiny_model):
    from fastapi.testclient import TestClient

    public = create_app(ServeSettings(model=str(tiny_model), host="0.0.0.0"))
    with TestClient(public, base_url="http://192.168.1.20:8000") as c:
        assert c.get("/healthz").status_code == 200
    named = create_app(ServeSettings(model=str(tiny_model), host="0.0.0.0", allow_hosts=["kiosk.lan"]))
    with TestClient(named, base_url="http://kiosk.lan") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 421


# ---------------------------------------------------------------- origins

def test_websocket_needs_the_pages_own_or_an_allowed_origin(server):
    own = f"http://127.0.0.1:{server.port}"
    for origin, expected in ((own, 101), (APP_ORIGIN, 101), ("https://evil.example", 403),
                             (f"http://localhost:{server.port}", 403),   # another origin than the Host named
                             ("null", 403), ("", 403)):
        sock, status = bench.ws_open("127.0.0.1", server.port, origin=origin)
        sock.close()
        assert status == expected, (origin, status)


def test_websocket_from_another_page_is_refused_by_a_real_client(server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as info:
        connect(server.ws_url + "/v1/stream", origin="https://evil.example", open_timeout=10)
    assert info.value.response.status_code == 403
    with connect(server.ws_url + "/v1/stream", origin=server.url, open_timeout=10) as ws:
        assert '"hello"' in ws.recv(timeout=10)


def test_http_from_another_page_is_refused_and_cors_allows_the_given_origin(server):
    r = upload(server.url, {"origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin"
    r = upload(server.url, {"origin": APP_ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP_ORIGIN
    pre = httpx.options(server.url + "/v1/predict", headers={"origin": APP_ORIGIN, "access-control-request-method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == APP_ORIGIN
    assert upload(server.url).status_code == 200                                # curl, apps: no Origin
    assert upload(server.url, {"origin": server.url}).status_code == 200        # the page itself


# ---------------------------------------------------------------- message limits before buffering

@pytest.mark.parametrize("text", [False, True])
def test_oversized_message_is_refused_from_its_header(server, text):
    """A 15 MiB message against a 256 KiB limit: close 1009 long before it could be read whole."""
    out = bench.send_oversized("127.0.0.1", server.port, 15 * MB, text=text)
    assert out["status"] == 101 and out["refused"], out
    assert out["sent"] < 8 * MB, out            # the server stopped taking it (socket buffers hold the rest)
    assert out["close_code"] in (1009, None)    # 1009 unless the reset overtook the close frame


def test_messages_under_the_limit_still_work(server):
    from websockets.sync.client import connect

    data = ASTRONAUT.read_bytes()
    assert len(data) < LIMIT
    with connect(server.ws_url + "/v1/stream", origin=server.url, open_timeout=10, max_size=None) as ws:
        ws.recv(timeout=10)
        ws.send(data)
        assert '"result"' in ws.recv(timeout=30)
        ws.send('{"type": "ping", "t": 1}')
        assert '"pong"' in ws.recv(timeout=10)


def test_text_over_the_limit_closes_1009_in_the_app(tiny_model):
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    app = create_app(ServeSettings(model=str(tiny_model), max_frame_bytes=1000))
    with TestClient(app, base_url="http://127.0.0.1") as c, \
            c.websocket_connect("ws://127.0.0.1/v1/stream", headers={"origin": "http://127.0.0.1"}) as ws:
        ws.receive_json()
        ws.send_text('{"type": "ping", "pad": "' + "x" * 2000 + '"}')
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1009


def test_limits_reach_uvicorn():
    from emolens.serve.limits import uvicorn_options

    opts = uvicorn_options(ServeSettings(max_frame_bytes=3 * MB, header_timeout_s=7.0))
    assert opts["ws_max_size"] == 3 * MB and opts["http"].keywords == {"header_timeout_s": 7.0}
    assert ServeSettings().max_frame_bytes == 2 * MB


# ---------------------------------------------------------------- timeouts

def test_slow_headers_are_cut_off_while_uploads_go_on(server):
    held: list[float] = []
    slow = [threading.Thread(target=lambda: held.append(bench.slow_headers("127.0.0.1", server.port, 0.3, 20)))
            for _ in range(4)]
    for t in slow:
        t.start()
    statuses = [upload(server.url).status_code for _ in range(3)]
    for t in slow:
        t.join(timeout=30)
    assert statuses == [200, 200, 200]
    assert len(held) == 4 and all(0.8 < s < 6 for s in held), held      # header timeout 1 s


def test_idle_connection_without_a_request_is_closed(server):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(100) == b""
    assert 0.8 < time.monotonic() - t0 < 6


def test_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
        t0 = time.monotonic()
        reply = b""
        while True:
            try:
                sock.sendall(b"x")
                chunk = sock.recv(4096) if select_readable(sock, 0.3) else b"-"
            except OSError:
                break
            if chunk == b"":
                break
            if chunk != b"-":
                reply += chunk
            if time.monotonic() - t0 > 15:
                break
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"request_timeout" in reply and time.monotonic() - t0 < 10


def select_readable(sock, timeout: float) -> bool:
    import select

    return bool(select.select([sock], [], [], timeout)[0])
