"""The web service against the real app: REST upload, limits and errors, WebSocket stream, CLI.

A tiny random model (conftest.make_tiny_model) with the real default detector; the face is the
public-domain NASA astronaut portrait shipped in emolens/assets.
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from PIL import Image  # noqa: E402

from emolens.assets import ASTRONAUT  # noqa: E402
from emolens.serve import ServeSettings, create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Using .httpx. with .starlette.testclient",
                                        "ignore:Corrupt EXIF data")

LIMIT = 300_000  # bytes; small so that the 413 tests stay cheap
LOCAL = "http://127.0.0.1"                 # the test client's base URL: a loopback Host header
PAGE_ORIGIN = {"origin": LOCAL}            # the app's own page, as a browser would send it
STREAM = "ws://127.0.0.1/v1/stream"        # (the test client's WebSockets ignore its base URL)


def local_client(app):
    """Starlette's test client, calling the app as the browser on this machine would (Host 127.0.0.1)."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url=LOCAL)


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    return ASTRONAUT.read_bytes()


@pytest.fixture(scope="module")
def face_rgb() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


@pytest.fixture(scope="module")
def settings(tiny_model) -> ServeSettings:
    return ServeSettings(model=str(tiny_model), max_upload_bytes=LIMIT, send_timeout_s=1.0)


@pytest.fixture(scope="module")
def app(settings):
    return create_app(settings)


@pytest.fixture(scope="module")
def client(app):
    with local_client(app) as c:
        yield c


@pytest.fixture(scope="module")
def server(app):
    from emolens.serve.background import serve_in_thread

    with serve_in_thread(app) as running:
        yield running


def post_image(client, data: bytes, name="face.jpg", ctype="image/jpeg"):
    return client.post("/v1/predict", files={"file": (name, data, ctype)})


def assert_error(r, status: int, code: str | None = None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


# ---------------------------------------------------------------- service endpoints

def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "tiny7"


def test_models_lists_loaded_and_bundled(client):
    body = client.get("/v1/models").json()
    loaded = body["loaded"]
    assert loaded["name"] == "tiny7" and loaded["version"] == "0"
    assert loaded["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert loaded["backend"] in ("onnx", "torch") and loaded["detector"]
    assert isinstance(body["available"], list) and body["default"]


def test_openapi_schema_at_the_usual_path(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/models", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    responses = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "413", "415", "422"} <= set(responses)


def test_page_and_assets_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    for asset in ("/static/app.js", "/static/style.css", "/static/icon.svg"):
        assert asset in html
        assert client.get(asset).status_code == 200
    everything = html + client.get("/static/app.js").text + client.get("/static/style.css").text
    # no CDN: nothing is loaded from another origin
    for marker in ("https://", "http://", "//cdn", "@import"):
        assert marker not in everything.replace("http://localhost", "")


# ---------------------------------------------------------------- POST /v1/predict

def test_predict_jpeg_returns_faces_model_and_timings(client, face_jpeg):
    r = post_image(client, face_jpeg)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "tiny7" and body["model"]["version"] == "0"
    assert (body["width"], body["height"]) == (512, 512)
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 200  # the astronaut's face
    assert face["label"] in body["model"]["classes"]
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert face["confidence"] == pytest.approx(max(face["probabilities"].values()), abs=1e-4)
    assert len(face["landmarks"]) == 5
    for key in ("decode", "queue", "detect", "classify", "total"):
        assert body["timings_ms"][key] >= 0


@pytest.mark.parametrize("fmt,ctype", [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_predict_png_and_webp(client, face_rgb, fmt, ctype):
    data = encode(face_rgb[::2, ::2], fmt, **({"quality": 90} if fmt == "WEBP" else {}))
    r = post_image(client, data, name="face." + fmt.lower(), ctype=ctype)
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1 and r.json()["width"] == 256


def test_predict_rgba_png_and_grey(client, face_rgb):
    rgba = np.dstack([face_rgb[::2, ::2], np.full((256, 256), 255, np.uint8)])
    assert post_image(client, encode(rgba, "PNG"), ctype="image/png").status_code == 200
    grey = face_rgb[::2, ::2].mean(axis=2).astype(np.uint8)
    r = post_image(client, encode(grey, "JPEG"))
    assert r.status_code == 200 and len(r.json()["faces"]) == 1


def test_no_face_is_200_with_empty_list(client):
    blank = np.full((240, 320, 3), 128, np.uint8)
    r = post_image(client, encode(blank, "JPEG"))
    assert r.status_code == 200
    assert r.json()["faces"] == [] and r.json()["width"] == 320


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 2000, 3), (2000, 1, 3), (7, 5)])
def test_tiny_and_odd_images_are_answered(client, shape):
    r = post_image(client, encode(np.zeros(shape, np.uint8), "PNG"), ctype="image/png")
    assert r.status_code == 200 and r.json()["faces"] == []


def test_16_bit_png_keeps_its_face(client, face_rgb):
    grey16 = (face_rgb[::2, ::2].mean(axis=2) * 257).astype(np.uint16)
    r = post_image(client, encode(grey16, "PNG"), ctype="image/png")
    assert r.status_code == 200 and len(r.json()["faces"]) == 1


def test_content_type_is_not_trusted(client, face_jpeg):
    # a real JPEG sent as octet-stream is fine; text sent as image/jpeg is not
    assert post_image(client, face_jpeg, name="blob", ctype="application/octet-stream").status_code == 200
    assert_error(post_image(client, b"hello, not an image", name="x.jpg"), 415, "unsupported_media_type")


@pytest.mark.parametrize("payload", [b"%PDF-1.4\n...", b"<svg xmlns='x'/>", b"PK\x03\x04zip", b"\x00\x00\x00\x18ftypheic"])
def test_non_images_and_other_formats_get_415(client, payload):
    err = assert_error(post_image(client, payload, name="file.bin", ctype="application/octet-stream"), 415)
    assert "JPEG, PNG, WebP, GIF, TIFF or BMP" in err["message"]


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP"])
def test_gif_tiff_bmp_are_read_like_the_cli(client, face_rgb, fmt):
    from emolens.vision.images import decode_image as cli_decode

    data = encode(face_rgb[::2, ::2], fmt)
    r = post_image(client, data, name="face." + fmt.lower(), ctype="application/octet-stream")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == cli_decode(data).shape[1::-1] == (256, 256)
    assert len(body["faces"]) == 1


def test_animated_gif_uses_its_first_frame(client, face_rgb):
    frames = [Image.fromarray(face_rgb[::2, ::2]), Image.new("RGB", (256, 256), (20, 20, 20))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r = post_image(client, buf.getvalue(), name="anim.gif", ctype="image/gif")
    assert r.status_code == 200 and len(r.json()["faces"]) == 1      # the face is on frame 0 only


def test_error_messages_show_no_reprs_addresses_or_paths(client, face_rgb):
    png = encode(face_rgb[:64, :64], "PNG")
    bad_crc = png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]          # IHDR checksum broken
    payloads = [bad_crc, png[:80], b"GIF89a" + b"\x00" * 64, b"BM" + b"\0" * 60, b"II*\x00" + b"\1" * 40]
    for data in payloads:
        err = assert_error(post_image(client, data, ctype="application/octet-stream"), 422, "corrupt_image")
        for leak in ("0x", "BytesIO", "object at", "/tmp", "/home", "site-packages", "Traceback"):
            assert leak not in err["message"], err["message"]


def test_docs_page_is_served_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    scripts = [part.split('"')[1] for part in page.text.split("src=")[1:]]
    assert scripts and all(src.startswith("/") for src in scripts)
    for src in scripts:
        assert client.get(src).status_code == 200


def test_corrupt_images_get_422(client, face_jpeg, face_rgb):
    assert_error(post_image(client, face_jpeg[:4000]), 422, "corrupt_image")          # truncated JPEG
    png = encode(face_rgb[:64, :64], "PNG")
    broken = png[:40] + bytes(b ^ 0x5A for b in png[40:200]) + png[200:]
    assert_error(post_image(client, broken, ctype="image/png"), 422, "corrupt_image")  # damaged PNG
    assert_error(post_image(client, b"RIFF\x10\x00\x00\x00WEBPVP8 junk", ctype="image/webp"), 422)
    assert_error(post_image(client, encode(face_rgb[:64, :64], "GIF")[:30], ctype="image/gif"), 422, "corrupt_image")
    assert_error(post_image(client, b""), 422, "empty_file")


def test_missing_file_field_gets_422_json(client, face_jpeg):
    err = assert_error(client.post("/v1/predict", files={"image": ("a.jpg", face_jpeg, "image/jpeg")}), 422)
    assert "file" in err["message"]
    assert_error(client.post("/v1/predict"), 422)


def test_upload_over_the_limit_gets_413(client):
    big = b"\xff\xd8\xff" + b"\0" * (LIMIT + 10)          # a little over: caught on the file itself
    assert_error(post_image(client, big), 413, "payload_too_large")
    huge = b"\xff\xd8\xff" + b"\0" * (LIMIT + 200_000)    # far over: refused from Content-Length
    assert_error(post_image(client, huge), 413, "payload_too_large")


def test_chunked_upload_over_the_limit_gets_413(client):
    def body():  # no Content-Length: counted while it streams in
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(12):
            yield b"\0" * 50_000

    r = client.post("/v1/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(r, 413)


def test_decompression_bomb_gets_413(tiny_model, face_rgb):
    small = create_app(ServeSettings(model=str(tiny_model), max_pixels=100_000))
    with local_client(small) as c:
        assert_error(post_image(c, encode(face_rgb, "JPEG")), 413, "image_too_large")   # 512x512 > 100k px
        assert post_image(c, encode(face_rgb[::2, ::2], "JPEG")).status_code == 200


def test_default_upload_limit_is_10_mb():
    assert ServeSettings().max_upload_bytes == 10 * 1024 * 1024


def test_413_reaches_a_real_http_client(server):
    import httpx

    payload = b"\xff\xd8\xff" + b"\0" * (LIMIT * 3)
    r = httpx.post(server.url + "/v1/predict", files={"file": ("big.jpg", payload, "image/jpeg")}, timeout=30)
    assert_error(r, 413)


def test_concurrent_uploads_on_a_real_server(server, face_rgb):
    import httpx

    data = encode(face_rgb[::2, ::2], "JPEG")

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            rs = await asyncio.gather(*[c.post("/v1/predict", files={"file": ("f.jpg", data, "image/jpeg")})
                                        for _ in range(8)])
        return rs

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 8
    assert all(len(r.json()["faces"]) == 1 for r in responses)


def test_overload_gets_503(tiny_model, face_jpeg):
    from emolens.serve.engine import Engine

    engine = Engine(ServeSettings(model=str(tiny_model), max_pending=4))
    with local_client(create_app(engine.settings, engine=engine)) as c:
        engine.pending = 4  # as if four uploads were already waiting for the recognizer
        r = post_image(c, face_jpeg)
        assert_error(r, 503, "overloaded")
        assert r.headers.get("retry-after") == "1"
        engine.pending = 0
        assert post_image(c, face_jpeg).status_code == 200


# ---------------------------------------------------------------- WebSocket stream

def shifted(face_rgb: np.ndarray, dx: int) -> bytes:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[0:480, 64 + dx:64 + dx + 480] = np.asarray(Image.fromarray(face_rgb).resize((480, 480)))
    return encode(frame, "JPEG", quality=85)


def test_stream_answers_frames_with_track_ids(client, face_rgb):
    with client.websocket_connect(STREAM, headers=PAGE_ORIGIN) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["model"]["name"] == "tiny7"
        ids = []
        for i, dx in enumerate((0, 6, 12)):
            ws.send_bytes(shifted(face_rgb, dx))
            msg = ws.receive_json()
            assert msg["type"] == "result" and msg["seq"] == i, msg
            assert len(msg["faces"]) == 1 and msg["width"] == 640
            ids.append(msg["faces"][0]["track_id"])
            assert msg["timings_ms"]["server"] >= 0
        assert ids[0] is not None and ids == [ids[0]] * 3     # the same face keeps its id
        ws.send_text(json.dumps({"type": "ping", "t": 7}))
        assert ws.receive_json() == {"type": "pong", "t": 7}


def test_stream_bad_frames_get_errors_and_the_stream_goes_on(client, face_jpeg):
    with client.websocket_connect(STREAM, headers=PAGE_ORIGIN) as ws:
        ws.receive_json()
        ws.send_bytes(b"not an image at all")
        err = ws.receive_json()
        assert err["type"] == "error" and err["code"] == "unsupported_media_type" and err["seq"] == 0
        ws.send_bytes(face_jpeg[:3000])
        assert ws.receive_json()["code"] == "corrupt_image"
        ws.send_text("hello?")
        assert ws.receive_json()["code"] == "bad_message"
        ws.send_bytes(face_jpeg)
        msg = ws.receive_json()
        assert msg["type"] == "result" and msg["seq"] == 2 and len(msg["faces"]) == 1


def test_stream_drops_stale_frames_instead_of_queueing(client, face_jpeg):
    with client.websocket_connect(STREAM, headers=PAGE_ORIGIN) as ws:
        ws.receive_json()
        n = 12
        for _ in range(n):           # a burst much faster than recognition
            ws.send_bytes(face_jpeg)
        answered = []
        while True:
            msg = ws.receive_json()
            assert msg["type"] == "result"
            answered.append(msg["seq"])
            if msg["seq"] == n - 1:
                break
        assert answered == sorted(answered)
        assert len(answered) < n                       # some frames were skipped...
        assert msg["dropped"] + len(answered) == n     # ...and counted, none queued behind
        assert msg["received"] == n


def test_stream_frame_over_the_limit_closes_1009(tiny_model):
    from starlette.websockets import WebSocketDisconnect

    app = create_app(ServeSettings(model=str(tiny_model), max_frame_bytes=1000))
    with local_client(app) as c, c.websocket_connect(STREAM, headers=PAGE_ORIGIN) as ws:
        ws.receive_json()
        ws.send_bytes(b"\xff\xd8\xff" + b"\0" * 2000)
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1009


def test_stream_limit_refuses_with_1013(tiny_model):
    from starlette.websockets import WebSocketDisconnect

    app = create_app(ServeSettings(model=str(tiny_model), max_streams=1))
    with local_client(app) as c, c.websocket_connect(STREAM, headers=PAGE_ORIGIN) as first:
        assert first.receive_json()["type"] == "hello"
        with c.websocket_connect(STREAM, headers=PAGE_ORIGIN) as second:
            with pytest.raises(WebSocketDisconnect) as info:
                second.receive_json()
            assert info.value.code == 1013


def test_client_that_stops_reading_is_cut_off():
    """A send that does not complete within send_timeout_s ends that stream (and only that one)."""
    from emolens.serve.stream import _Gone, _Stream

    class StuckSocket:
        async def send_text(self, text):
            await asyncio.sleep(3600)

    class Dummy:
        info = {}

    stream = _Stream(StuckSocket(), Dummy(), ServeSettings(send_timeout_s=0.05))

    async def go():
        t0 = time.monotonic()
        with pytest.raises(_Gone):
            await stream.send({"type": "result"})
        return time.monotonic() - t0

    assert asyncio.run(go()) < 1.0
    assert stream.close_code == 1008


def test_slow_and_vanished_clients_do_not_block_others(server, face_rgb, face_jpeg):
    """On a real server: one client floods frames and never reads, one vanishes mid-stream; a third
    client and an upload are still answered promptly."""
    import socket

    import httpx
    from websockets.sync.client import connect

    url = server.ws_url + "/v1/stream"
    frame = shifted(face_rgb, 0)

    flooder = connect(url, max_size=None, origin=server.url)
    flooder.recv(timeout=10)                              # hello; then never read again
    for _ in range(40):
        flooder.send(frame)

    vanishing = connect(url, origin=server.url)
    vanishing.recv(timeout=10)
    vanishing.send(frame)
    vanishing.socket.shutdown(socket.SHUT_RDWR)         # gone without a close handshake
    vanishing.socket.close()

    try:
        t0 = time.monotonic()
        with connect(url, origin=server.url) as polite:
            assert json.loads(polite.recv(timeout=10))["type"] == "hello"
            for i in range(3):
                polite.send(frame)
                msg = json.loads(polite.recv(timeout=10))
                assert msg["type"] == "result" and msg["seq"] == i and len(msg["faces"]) == 1
        r = httpx.post(server.url + "/v1/predict", files={"file": ("a.jpg", face_jpeg, "image/jpeg")}, timeout=10)
        assert r.status_code == 200
        assert time.monotonic() - t0 < 10
    finally:
        flooder.close()
    # the service forgets both streams
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and httpx.get(server.url + "/healthz").json()["streams"] > 0:
        time.sleep(0.1)
    assert httpx.get(server.url + "/healthz").json()["streams"] == 0


# ---------------------------------------------------------------- CLI

def test_cli_serve_help_lists_the_options(capsys):
    from emolens.cli import main

    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--model", "--workers", "--max-upload-mb"):
        assert flag in out


def test_cli_serve_settings_and_bad_model(capsys, tmp_path):
    from emolens.cli import build_parser, main
    from emolens.cli.serve import settings_from_args

    args = build_parser().parse_args(["serve", "--port", "8123", "--workers", "2", "--max-upload-mb", "1.5",
                                      "--model", "x.safetensors"])
    s = settings_from_args(args)
    assert (s.host, s.port, s.workers, s.model, s.max_upload_bytes) == ("127.0.0.1", 8123, 2, "x.safetensors",
                                                                        int(1.5 * 1024 * 1024))
    # a model that does not exist fails with one line before any port is opened
    assert main(["serve", "--model", str(tmp_path / "missing.safetensors"), "--port", "1"]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_cli_serve_exposure_flags():
    from emolens.cli import build_parser
    from emolens.cli.serve import settings_from_args

    args = build_parser().parse_args(["serve", "--allow-origin", "https://a.example/", "--allow-origin", "http://b.lan:81",
                                      "--allow-host", "Emolens.Example.com", "--max-message-mb", "0.5",
                                      "--header-timeout", "3", "--body-timeout", "4", "--min-confidence", "0.6"])
    s = settings_from_args(args)
    assert s.allow_origins == ["https://a.example", "http://b.lan:81"] and s.allow_hosts == ["emolens.example.com"]
    assert (s.max_frame_bytes, s.header_timeout_s, s.body_timeout_s, s.min_confidence) == (512 * 1024, 3.0, 4.0, 0.6)
    defaults = settings_from_args(build_parser().parse_args(["serve"]))
    assert (defaults.allow_origins, defaults.allow_hosts, defaults.min_confidence) == ([], [], None)
    assert defaults.max_frame_bytes == 2 * 1024 * 1024


def test_min_confidence_reaches_the_recognizer(tiny_model, face_jpeg):
    """--min-confidence P: a face whose top probability is under P is 'uncertain', probabilities kept."""
    app = create_app(ServeSettings(model=str(tiny_model), min_confidence=0.99))   # the random tiny model is unsure
    with local_client(app) as c:
        r = post_image(c, face_jpeg)
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    face = r.json()["faces"][0]
    assert face["label"] == "uncertain" and face["confidence"] < 0.99
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3


def test_settings_travel_to_worker_processes(monkeypatch, tiny_model):
    from emolens.serve.app import app_from_env
    from emolens.serve.config import ENV_VAR

    monkeypatch.setenv(ENV_VAR, ServeSettings(model=str(tiny_model), max_upload_bytes=1234).to_json())
    app = app_from_env()
    assert app.state.settings.max_upload_bytes == 1234 and app.state.engine.info["name"] == "tiny7"


def test_upload_numbers_faces_from_1_in_reading_order_as_the_cli(client, tiny_model, tmp_path):
    """/v1/predict gives each face the number `emolens predict` gives it (its table, CSV and JSON)."""
    from test_predict_cli import two_rows_of_faces

    from emolens.cli import main

    photo = tmp_path / "group.jpg"
    Image.fromarray(two_rows_of_faces()).save(photo, quality=90)
    r = client.post("/v1/predict", files={"file": ("group.jpg", photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200
    served = r.json()["faces"]
    out = tmp_path / "r.json"
    # one detection size for photos by every route (issue 25 item 8): no --max-side here
    assert main(["predict", str(photo), "--model", str(tiny_model), "--json", str(out), "--quiet"]) == 0
    cli = json.loads(out.read_text())["images"][0]["faces"]
    assert [f["face"] for f in served] == [1, 2, 3, 4, 5, 6] == [f["face"] for f in cli]
    np.testing.assert_allclose([f["box"] for f in served], [f["box"] for f in cli], atol=0.5)
    rows = [round((f["box"][1] + f["box"][3]) / 2 / 320) for f in served]   # which half of the 640-px picture
    assert rows == [0, 0, 0, 1, 1, 1]
