"""The Recognizer facade end to end: real detector, real (tiny) model, no mocks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

import emolens
from emolens.assets import ASTRONAUT, astronaut, face_frame
from emolens.runtime import load_classifier
from emolens.vision.errors import DetectorError, ImageError
from emolens.vision.results import FrameResult, Results

cv2.setNumThreads(1)

FACE_BOX = (178, 57, 273, 177)
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def rec(tiny_model):
    return emolens.Recognizer(model=str(tiny_model))


class CountingClassifier:
    """Wraps a real classifier and records the batch size of every call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict_proba(self, faces, tta=False):
        self.calls.append(len(faces))
        return self.inner.predict_proba(faces, tta=tta)


def test_recognizer_is_exported_and_describes_itself(rec):
    assert emolens.Recognizer is type(rec)
    assert rec.classes == CLASSES
    assert "retinaface" in repr(rec) and "onnx" in repr(rec)


def test_one_face_in_the_astronaut_portrait(rec):
    frame = rec.predict(ASTRONAUT)
    assert isinstance(frame, FrameResult) and (frame.width, frame.height) == (512, 512)
    assert len(frame) == 1
    f = frame.faces[0]
    x1, y1, x2, y2 = f.box
    assert abs(x1 - FACE_BOX[0]) < 10 and abs(y1 - FACE_BOX[1]) < 10 and abs(x2 - FACE_BOX[2]) < 10
    assert abs(y2 - FACE_BOX[3]) < 10
    assert f.score > 0.9 and len(f.landmarks) == 5 and f.track_id is None
    assert list(f.probabilities) == CLASSES
    assert sum(f.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert f.label == max(f.probabilities, key=f.probabilities.get)
    assert f.confidence == f.probabilities[f.label]
    assert set(frame.timings_ms) == {"detect", "align", "classify", "total"}


def test_every_input_kind_gives_the_same_result(rec):
    rgb = astronaut()
    results = [rec.predict(ASTRONAUT), rec.predict(str(ASTRONAUT)), rec.predict(ASTRONAUT.read_bytes()),
               rec.predict(Image.open(ASTRONAUT)), rec.predict(rgb), rec.predict(rgb[..., ::-1].copy(), bgr=True)]
    probs = [r.faces[0].probabilities for r in results]
    for p in probs[1:]:
        assert p == pytest.approx(probs[0], abs=1e-6)


def test_grey_rgba_and_16_bit_inputs(rec):
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY)
    assert len(rec.predict(grey)) == 1
    rgba = np.dstack([astronaut(), np.full((512, 512), 255, np.uint8)])
    assert len(rec.predict(rgba)) == 1
    assert len(rec.predict(grey.astype(np.uint16) * 257)) == 1


def test_no_face_is_an_empty_result_not_an_error(rec):
    frame = rec.predict(face_frame(0))
    assert frame.faces == [] and len(frame) == 0
    table = frame.to_pandas()        # one row, as in the JSON: the image, with its face columns empty
    assert len(table) == 1 and table["label"].isna().all() and list(table.columns)[:3] == ["source", "frame_index", "timestamp"]


def test_many_faces_are_classified_in_one_batch(tiny_model):
    rec = emolens.Recognizer(model=str(tiny_model))
    counting = CountingClassifier(rec.classifier)
    rec.pipeline.classifier = counting
    frame = rec.predict(face_frame(10))
    assert len(frame) == 10 and counting.calls == [10]
    xs, ys = [f.box[0] for f in frame.faces], [f.box[1] for f in frame.faces]
    assert xs[:5] == sorted(xs[:5]) and xs[5:] == sorted(xs[5:])  # two rows of 5, in reading order
    assert max(ys[:5]) < min(ys[5:])
    batch = rec.predict_batch([face_frame(5), face_frame(0), ASTRONAUT, face_frame(2)])
    assert counting.calls[-1] == 8                                 # 5 + 0 + 1 + 2 faces, one call
    assert isinstance(batch, Results) and [len(f) for f in batch] == [5, 0, 1, 2]
    single = rec.predict(ASTRONAUT).faces[0].probabilities
    assert batch[2].faces[0].probabilities == pytest.approx(single, abs=1e-5)


def test_results_convert_to_dict_json_and_pandas(rec):
    batch = rec.predict_batch([face_frame(3), ASTRONAUT])
    df = batch.to_pandas()
    assert len(df) == 4
    assert {"source", "x1", "y1", "x2", "y2", "score", "label", "confidence", "p_happy", "p_neutral"} <= set(df.columns)
    assert np.allclose(df[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-5)
    docs = json.loads(batch.to_json())
    assert len(docs) == 2 and len(docs[0]["faces"]) == 3 and docs[1]["source"].endswith("astronaut.jpg")
    face = docs[1]["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and set(face["probabilities"]) == set(CLASSES)
    assert json.loads(batch[1].faces[0].to_json())["label"] == face["label"]
    assert batch[1].to_pandas().shape[0] == 1 and len(batch.faces) == 4
    assert batch.faces[0].top(2)[0][1] >= batch.faces[0].top(2)[1][1]


def test_bad_inputs_raise_errors_naming_them(rec, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match="broken.png"):
        rec.predict(bad)
    with pytest.raises(ImageError, match="broken.png"):
        rec.predict_batch([ASTRONAUT, bad])



def test_unknown_detector_is_one_clear_error(tiny_model):
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        emolens.Recognizer(model=str(tiny_model), detector="nope")


def test_other_detectors_plug_in(tiny_model):
    for name in ("haar", "mtcnn"):
        rec = emolens.Recognizer(model=str(tiny_model), detector=name)
        frame = rec.predict(ASTRONAUT)
        assert len(frame) == 1 and rec.detector.name == name
    assert rec.predict(ASTRONAUT).faces[0].landmarks is not None          # mtcnn gives landmarks
    haar = emolens.Recognizer(model=str(tiny_model), detector="haar").predict(ASTRONAUT)
    assert haar.faces[0].landmarks is None


def test_torch_and_onnx_runtime_agree(tiny_model):
    """Same crops through the eager torch model and the exported ONNX graph: same probabilities."""
    crops = np.random.default_rng(0).integers(0, 256, (9, 48, 48), dtype=np.uint8)
    onnx = load_classifier(str(tiny_model), backend="onnx")
    torch_ = load_classifier(str(tiny_model), backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    assert np.allclose(onnx.predict_proba(crops), torch_.predict_proba(crops), atol=1e-5)
    assert np.allclose(onnx.predict_proba(crops, tta=True), torch_.predict_proba(crops, tta=True), atol=1e-5)
    a = emolens.Recognizer(model=str(tiny_model), backend="onnx").predict(face_frame(5))
    b = emolens.Recognizer(model=str(tiny_model), backend="torch").predict(face_frame(5))
    assert len(a.faces) == len(b.faces) == 5   # the comparison below covers every face
    for fa, fb in zip(a.faces, b.faces):
        assert fa.label == fb.label and fa.probabilities == pytest.approx(fb.probabilities, abs=1e-5)


def test_bundled_default_model_sees_the_astronaut_smile():
    frame = emolens.Recognizer().predict(ASTRONAUT)
    assert len(frame) == 1 and frame.faces[0].label == "happy"


def test_results_of_in_memory_images_plot_and_save_their_own_picture(rec, tmp_path, monkeypatch):
    """An array, bytes or a PIL image has no file to read again: its result keeps the picture, so plot()
    and save() draw on it, never on a file in the working folder named like its source ("array")."""
    monkeypatch.chdir(tmp_path)
    decoy = np.zeros((50, 70, 3), np.uint8)
    for name in ("array", "bytes", "PIL image"):
        Image.fromarray(decoy).save(tmp_path / name, format="PNG")   # files named like the sources
    rgb = astronaut()
    expected = rec.predict(ASTRONAUT).plot()
    for image in (rgb, ASTRONAUT.read_bytes(), Image.fromarray(rgb)):
        frame = rec.predict(image)
        assert len(frame.faces) == 1
        drawn = frame.plot()
        assert drawn.shape == rgb.shape
        np.testing.assert_array_equal(drawn, expected)
        out = frame.save(tmp_path / "annotated.png")
        np.testing.assert_array_equal(cv2.imread(str(out)), expected)
    batch = rec.predict_batch([rgb, ASTRONAUT.read_bytes()])
    assert [p.shape for p in batch.plot()] == [rgb.shape, rgb.shape]
    assert "image" not in batch[0].to_dict() and not np.array_equal(rgb, batch[0].plot()[..., ::-1])
    assert batch[0].image is not None and rec.predict(ASTRONAUT).image is None   # files are read again
