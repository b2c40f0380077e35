"""One detection size per kind of input (photos, streams), the same through the CLI, the Python API
and the server (emolens/vision/detection_size.py): the same photo gives the same boxes by every route."""

from __future__ import annotations

import json

import numpy as np
import pytest

import emolens
from emolens.assets import ASTRONAUT, astronaut
from emolens.cli import build_parser, main
from emolens.vision.detection_size import DETECTION_SIZE


def faces_of(doc: dict) -> list[tuple]:
    return [(f["box"], f["score"], f["label"], f["probabilities"]) for f in doc["faces"]]


def test_the_photo_gives_the_same_faces_by_cli_api_and_server(capsys):
    pytest.importorskip("fastapi")
    import httpx

    from emolens.serve import ServeSettings, create_app
    from emolens.serve.background import serve_in_thread

    assert main(["predict", str(ASTRONAUT), "--json", "-", "--quiet"]) == 0
    cli = json.loads(capsys.readouterr().out)["images"][0]
    api = emolens.Recognizer().predict(ASTRONAUT).to_dict()
    with serve_in_thread(create_app(ServeSettings())) as server:
        served = httpx.post(server.url + "/v1/predict", files={"file": ("a.jpg", ASTRONAUT.read_bytes(), "image/jpeg")},
                            timeout=60).json()
        models = httpx.get(server.url + "/v1/models", timeout=60).json()
    assert len(cli["faces"]) == 1
    assert faces_of(cli) == faces_of(api) == faces_of(served)
    assert served["model"]["detection_size"] == models["loaded"]["detection_size"] == DETECTION_SIZE


def test_photos_and_streams_by_kind_through_the_api():
    import cv2

    # five heads whose faces are about 20 px wide: found at the photo size, missed at the stream size
    frame = np.full((480, 640, 3), 96, np.uint8)
    tile = cv2.resize(astronaut()[20:300, 110:390], (68, 68), interpolation=cv2.INTER_AREA)
    for i in range(5):
        frame[200:268, 40 + 120 * i:108 + 120 * i] = tile
    rec = emolens.Recognizer()
    assert rec.info()["detection_size"] == {"photo": 960, "stream": 320} == DETECTION_SIZE
    assert len(rec.predict(frame).faces) == 5
    assert rec.tracker(detect_every=1).update(frame).faces == []
    one = emolens.Recognizer(max_side=480)                  # a number sets every kind
    assert one.info()["detection_size"] == {"photo": 480, "stream": 480}
    assert len(one.tracker(detect_every=1).update(frame).faces) == 5


def test_the_server_stream_detects_at_the_stream_size():
    pytest.importorskip("fastapi")
    from emolens.serve.stream import make_tracker

    assert make_tracker(emolens.Recognizer()).max_side == DETECTION_SIZE["stream"]


def test_help_prints_the_default_of_each_kind():
    parsers = build_parser()._subparsers._group_actions[0].choices
    for command, kind in (("predict", "photo"), ("video", "stream"), ("webcam", "stream")):
        text = " ".join(parsers[command].format_help().split())
        assert f"(default {DETECTION_SIZE[kind]}, the {kind} size;" in text, command
    serve = " ".join(parsers["serve"].format_help().split())
    assert f"photos {DETECTION_SIZE['photo']} px, streams {DETECTION_SIZE['stream']} px" in serve
