"""The real face detectors on the bundled public-domain astronaut portrait and frames built from it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emolens.assets import astronaut, face_frame
from emolens.vision.detectors import (DEFAULT_DETECTOR, Detection, FaceDetector, create_detector, detector_info,
                                      list_detectors, register_detector)
from emolens.vision.detectors import registry as det_registry
from emolens.vision.errors import DetectorError
from emolens.vision.tracking import iou_matrix

cv2.setNumThreads(1)

#: Eileen Collins' face in the 512x512 portrait (hairline to chin), checked by eye.
FACE_BOX = (178, 57, 273, 177)
#: The detectors that look for faces ("none" takes the whole image as one face: tests/test_precropped.py).
INSTALLED = [info.name for info in list_detectors() if info.available() and info.name != "none"]
WITH_LANDMARKS = [name for name in INSTALLED if detector_info(name).landmarks]


@pytest.fixture(scope="module")
def detectors():
    return {name: create_detector(name) for name in INSTALLED}


def iou(a, b) -> float:
    return float(iou_matrix(np.array([a], float), np.array([b], float))[0, 0])


def test_registry_lists_the_builtin_detectors():
    names = [info.name for info in list_detectors()]
    assert names[0] == DEFAULT_DETECTOR == "retinaface"
    assert {"retinaface", "haar", "mtcnn", "yuface", "none"} <= set(names)
    assert {"retinaface", "haar", "mtcnn"} <= set(INSTALLED)        # the core dependencies
    assert detector_info("YuNet").name == "yuface"                  # aliases, any case
    assert detector_info(None).name == "retinaface"


def test_unknown_detector_names_the_known_ones():
    with pytest.raises(DetectorError, match="unknown detector 'nope'; known detectors: haar, mtcnn"):
        create_detector("nope")


def test_missing_package_gives_the_pip_command():
    @register_detector("needs-missing", package="emolens-no-such-package", module="emolens_no_such_module")
    class Missing(FaceDetector):
        pass

    try:
        info = detector_info("needs-missing")
        assert not info.available()
        with pytest.raises(DetectorError, match="needs the package emolens-no-such-package, which is not installed: "
                                                "pip install emolens-no-such-package"):
            create_detector("needs-missing")
    finally:
        det_registry._REGISTRY.pop("needs-missing")


@pytest.mark.parametrize("name", INSTALLED)
def test_exactly_one_face_in_the_astronaut_portrait(detectors, name):
    found = detectors[name].detect(astronaut())
    assert len(found) == 1
    face = found[0]
    assert isinstance(face, Detection)
    assert iou(face.box, FACE_BOX) > 0.6, face.box
    assert 0.0 < face.score <= 1.0


@pytest.mark.parametrize("name", WITH_LANDMARKS)
def test_five_landmarks_in_a_fixed_order(detectors, name):
    marks = detectors[name].detect(astronaut())[0].landmarks
    assert marks.shape == (5, 2)
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = marks
    x1, y1, x2, y2 = FACE_BOX
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in marks)   # all inside the face
    assert lex < nx < rex and mlx < mrx                              # left/right as seen in the image
    assert max(ley, rey) < ny < min(mly, mry)                        # eyes above nose above mouth
    assert 35 < rex - lex < 50                                       # eye distance ~42 px


@pytest.mark.parametrize("name", [n for n in ("retinaface", "mtcnn", "yuface") if n in INSTALLED])
def test_five_and_ten_face_frames(detectors, name):
    for n in (5, 10):
        assert len(detectors[name].detect(face_frame(n))) == n


@pytest.mark.parametrize("name", INSTALLED)
def test_no_face_gives_an_empty_list(detectors, name):
    assert detectors[name].detect(face_frame(0)) == []
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert detectors[name].detect(noise) == []


def test_large_image_is_scaled_down_and_boxes_back_up(detectors):
    big = cv2.resize(astronaut(), (2048, 2048), interpolation=cv2.INTER_LINEAR)   # 4x, over the default max_side (960)
    found = detectors["retinaface"].detect(big)
    assert len(found) == 1
    assert iou(np.array(found[0].box) / 4, FACE_BOX) > 0.7
    assert np.allclose(found[0].landmarks[0] / 4, (205, 101), atol=4)


def _row_of_small_faces(head_px: int) -> np.ndarray:
    """A 640x480 frame with five astronaut heads ``head_px`` wide (the face box is about 0.3 of it)."""
    frame = np.full((480, 640, 3), 96, np.uint8)
    tile = cv2.resize(astronaut()[20:300, 110:390], (head_px, head_px), interpolation=cv2.INTER_AREA)
    for i in range(5):
        frame[200:200 + head_px, 40 + 120 * i:40 + 120 * i + head_px] = tile
    return frame


def test_detection_at_480_keeps_faces_of_20_px_in_a_640x480_frame(detectors):
    """max_side 480 still finds faces about 20 px wide; full size (the photo default, 960, for such a
    frame) goes down to ~16 px; a detector built alone takes the photo size."""
    from emolens.vision.detection_size import PHOTO
    from emolens.vision.detectors.base import DEFAULT_MAX_SIDE

    d = detectors["retinaface"]
    assert d.max_side == DEFAULT_MAX_SIDE == PHOTO
    found = d.detect(_row_of_small_faces(68), max_side=480)
    assert len(found) == 5 and all(16 <= f.width <= 24 for f in found)
    tiny = _row_of_small_faces(60)
    assert d.detect(tiny, max_side=480) == []
    assert len(d.detect(tiny)) == 5 and len(create_detector("retinaface", max_side=0).detect(tiny)) == 5


def test_small_and_odd_sized_images(detectors):
    d = detectors["retinaface"]
    assert d.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert d.detect(np.zeros((33, 517, 3), np.uint8)) == []
    odd = np.ascontiguousarray(astronaut()[3:500, 7:509])                           # 497x502
    assert len(d.detect(odd)) == 1


def test_min_score_filters(detectors):
    strict = create_detector("retinaface", min_score=0.99999999)
    assert strict.detect(astronaut()) == []
    assert create_detector("retinaface", min_score=0.5).min_score == 0.5
