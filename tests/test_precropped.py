"""Pre-cropped faces (``--detector none`` / ``Recognizer(detector="none")``): each image is one face,
aligned by resizing; through the CLI, the Python API, evaluate --detect and the server alike."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens.cli import main
from emolens.vision.detectors import create_detector, list_detectors

from conftest import SHARED_FER

FER_CSV = SHARED_FER / "fer2013.csv.gz"


def fer_crops(n: int) -> list[np.ndarray]:
    """The first ``n`` faces of FER-2013 (48x48 grey crops), or synthetic ones without the data set."""
    if not FER_CSV.is_file():
        pytest.skip(f"{FER_CSV} not available")
    out = []
    with gzip.open(FER_CSV, "rt") as f:
        next(f)
        for line in itertools.islice(f, n):
            out.append(np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48))
    return out


@pytest.fixture(scope="module")
def crops_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crops")
    for i, face in enumerate(fer_crops(20)):
        assert cv2.imwrite(str(root / f"face{i:02d}.png"), face)
    return root


def test_none_is_a_registered_detector_without_landmarks():
    info = {d.name: d for d in list_detectors()}["none"]
    assert info.available() and not info.landmarks
    found = create_detector("none").detect(np.zeros((48, 60, 3), np.uint8))
    assert [d.box for d in found] == [(0.0, 0.0, 60.0, 48.0)] and found[0].score == 1.0


def test_recognizer_classifies_the_whole_crop(tiny_model):
    face = fer_crops(1)[0]
    rec = emolens.Recognizer(model=str(tiny_model), detector="none")
    frame = rec.predict(face)
    assert len(frame.faces) == 1 and frame.faces[0].box == (0.0, 0.0, 48.0, 48.0)
    expected = rec.classifier.predict_proba(face[None])[0]          # the crop itself, unchanged
    assert list(frame.faces[0].probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    big = rec.predict(cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC))   # resized to the model's 48
    assert len(big.faces) == 1 and big.faces[0].box == (0.0, 0.0, 96.0, 96.0)


def test_predict_crops_with_and_without_detection(crops_dir, tiny_model, capsys):
    rc = main(["predict", str(crops_dir), "--model", str(tiny_model), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    missed = [line for line in out.splitlines() if "no face found" in line]
    assert missed, "the default detector finds every FER-2013 crop: pick other crops for this test"
    assert all(line.endswith("no face found (48x48: for a face crop use --detector none)") for line in missed)

    rc = main(["predict", str(crops_dir), "--model", str(tiny_model), "--detector", "none", "--json", "-", "-q",
               "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(doc["images"]) == 20
    assert all(len(img["faces"]) == 1 and img["faces"][0]["box"] == [0, 0, 48, 48] for img in doc["images"])


def test_a_large_image_without_a_face_gets_no_crop_hint(tmp_path, tiny_model, capsys):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((480, 640, 3), 96, np.uint8))
    assert main(["predict", str(tmp_path / "wall.png"), "--model", str(tiny_model)]) == 0
    assert capsys.readouterr().out.strip().endswith("wall.png  no face found")


def test_evaluate_detect_takes_it(crops_dir, tmp_path, tiny_model, capsys):
    pytest.importorskip("sklearn")
    happy = tmp_path / "faces" / "happy"
    happy.mkdir(parents=True)
    for p in sorted(crops_dir.glob("*.png"))[:6]:
        (happy / p.name).write_bytes(p.read_bytes())
    rc = main(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "faces"), "--detect",
               "--detector", "none", "--no-tta"])
    assert rc == 0
    assert "detection rate 1.0000" in capsys.readouterr().out


def test_the_server_takes_it(tiny_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from emolens.serve import ServeSettings, create_app

    face = fer_crops(1)[0]
    ok, png = cv2.imencode(".png", face)
    app = create_app(ServeSettings(model=str(tiny_model), detector="none"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post("/v1/predict", files={"file": ("face.png", png.tobytes(), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["detector"] == "none"
    assert [f["box"] for f in r.json()["faces"]] == [[0, 0, 48, 48]]
