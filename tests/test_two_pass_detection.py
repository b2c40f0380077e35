"""Two-pass detection of still images (issue 27): a small first pass answers when it is sure, the
photo size runs when it is not, and no face one pass finds is lost."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import emolens
from emolens.assets import face_frame
from emolens.vision.detection_size import FIRST_PASS, FIRST_PASS_REACH, PHOTO
from emolens.vision.detectors import create_detector
from emolens.vision.tracking import iou_matrix


def boxes(dets):
    return np.array([d.box for d in dets]).reshape(-1, 4)


@pytest.fixture(scope="module")
def two():
    return create_detector("retinaface", threads=1, max_side=PHOTO, first_pass=FIRST_PASS)


@pytest.fixture(scope="module")
def one():
    return create_detector("retinaface", threads=1, max_side=PHOTO)


def test_the_first_pass_answers_a_frame_with_one_clear_face(two, one):
    frame = face_frame(1)
    two.passes = {"first": 0, "full": 0}
    (face,) = two.detect(frame)
    assert two.passes == {"first": 1, "full": 0}
    (ref,) = one.detect(frame)
    assert iou_matrix(boxes([face]), boxes([ref]))[0, 0] > 0.8 and face.landmarks.shape == (5, 2)


@pytest.mark.parametrize("n_faces", [5, 10])
def test_small_faces_send_the_image_to_the_photo_size_and_none_is_lost(two, one, n_faces):
    frame = face_frame(n_faces)
    two.passes = {"first": 0, "full": 0}
    found, ref = two.detect(frame), one.detect(frame, 480)
    assert two.passes["full"] == 1 and len(ref) == n_faces
    assert (iou_matrix(boxes(ref), boxes(found)).max(axis=1) >= 0.3).all()


def test_a_frame_without_faces_is_detected_again_at_the_photo_size(two):
    two.passes = {"first": 0, "full": 0}
    assert two.detect(np.full((480, 640, 3), 96, np.uint8)) == []
    assert two.passes == {"first": 0, "full": 1}


def test_big_photos_and_small_images_get_one_pass(two):
    two.passes = {"first": 0, "full": 0}
    big = cv2.resize(face_frame(1), (FIRST_PASS * FIRST_PASS_REACH * 2, FIRST_PASS * FIRST_PASS_REACH * 3 // 2))
    assert len(two.detect(big)) == 1                                    # more than REACH x the first pass
    small = cv2.resize(face_frame(1), (FIRST_PASS, FIRST_PASS * 3 // 4))
    assert len(two.detect(small)) == 1                                  # no bigger than the first pass
    assert two.passes == {"first": 0, "full": 2}


def test_the_recognizer_detects_photos_in_two_passes_by_default_and_first_pass_0_turns_it_off():
    rec = emolens.Recognizer(threads=1)
    assert rec.detector.first_pass == rec.info()["first_pass"] == FIRST_PASS
    assert rec.predict(face_frame(1)).faces[0].label == "happy" and rec.detector.passes["first"] == 1
    off = emolens.Recognizer(threads=1, first_pass=0)
    off.predict(face_frame(1))
    assert off.detector.passes == {"first": 0, "full": 1} and off.info()["first_pass"] == 0
