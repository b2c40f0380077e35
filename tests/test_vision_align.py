"""Alignment: eyes levelled, face centred, crop at the model's input size."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from emolens.assets import astronaut
from emolens.vision.align import align_face, align_faces, crop_matrix, eye_angle, to_grey
from emolens.vision.detectors import Detection, create_detector

cv2.setNumThreads(1)


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.hstack([points, np.ones((len(points), 1))]) @ m.T


def test_eye_angle():
    assert eye_angle(None) == 0.0
    assert eye_angle(np.array([[0, 0], [10, 0], [5, 5], [2, 8], [8, 8]])) == 0.0
    assert eye_angle(np.array([[0, 0], [10, 10], [5, 5], [2, 8], [8, 8]])) == pytest.approx(45.0)
    assert eye_angle(np.array([[0, 0], [0, 10], [5, 5], [2, 8], [8, 8]])) == 0.0   # 90 degrees: distrusted
    assert eye_angle(np.zeros((5, 2))) == 0.0


@pytest.mark.parametrize("angle", [-30, -10, 0, 12, 25])
def test_crop_matrix_levels_the_eyes_and_centres_the_box(angle):
    box = (100.0, 80.0, 200.0, 200.0)
    centre = np.array([150.0, 140.0])
    t = math.radians(angle)
    eyes = centre + np.array([[-20 * math.cos(t), -20 * math.sin(t)], [20 * math.cos(t), 20 * math.sin(t)]])
    m = crop_matrix(box, angle, 48, margin=0.1)
    (left, right), c = apply(m, eyes), apply(m, centre[None])[0]
    assert left[1] == pytest.approx(right[1], abs=1e-6)    # level
    assert left[0] < right[0]                              # not flipped
    assert c == pytest.approx((24, 24))                  # box centre -> crop centre
    assert np.linalg.norm(right - left) == pytest.approx(40 * 48 / (120 * 1.2))   # longer side + 2 x 10 % fills 48 px


def test_rotated_portrait_is_straightened():
    """Turn the portrait by 20 degrees; after alignment the detected eyes are level in the crop."""
    img = astronaut()
    turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((256, 256), 20, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    det = create_detector("retinaface").detect(turned)[0]
    assert abs(eye_angle(det.landmarks)) > 15
    m = crop_matrix(det.box, eye_angle(det.landmarks), 96)
    left, right = apply(m, det.landmarks[:2])
    assert abs(left[1] - right[1]) < 1e-6
    upright = create_detector("retinaface").detect(img)[0]
    a = align_face(to_grey(turned), det, 96).astype(float)
    b = align_face(to_grey(img), upright, 96).astype(float)
    # the straightened crop looks like the crop of the upright portrait (grey levels correlate strongly)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.8


def test_crops_have_the_model_size_and_dtype():
    grey = to_grey(astronaut())
    dets = [Detection((178, 57, 273, 177), 0.99), Detection((0, 0, 40, 30), 0.9), Detection((500, 500, 600, 640), 0.9)]
    crops = align_faces(grey, dets, 48)
    assert crops.shape == (3, 48, 48) and crops.dtype == np.uint8
    assert align_faces(grey, [], 48).shape == (0, 48, 48)
    assert align_face(astronaut(), dets[0], 64).shape == (64, 64, 3)


def test_bigger_margin_shows_a_smaller_face():
    grey = to_grey(astronaut())
    det = create_detector("retinaface").detect(astronaut())[0]
    eye_gap = []
    for margin in (0.0, 0.3):
        m = crop_matrix(det.box, eye_angle(det.landmarks), 48, margin)
        left, right = apply(m, det.landmarks[:2])
        eye_gap.append(right[0] - left[0])
        assert align_face(grey, det, 48, margin).shape == (48, 48)
    assert eye_gap[1] < eye_gap[0] * 0.8
