"""Tracker: stable ids for moving faces, new ids for new faces, EMA smoothing with a half-life."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.vision.results import FaceResult, FrameResult
from emolens.vision.tracking import FaceTracker, centre_distance, greedy_match, iou_matrix


def face(x: float, y: float, size: float = 50, probs=(0.5, 0.5)) -> FaceResult:
    p = dict(zip(("happy", "sad"), probs))
    best = max(p, key=p.get)
    return FaceResult(box=(x, y, x + size, y + size), score=0.99, label=best, confidence=p[best], probabilities=p)


def frame(faces, t: float) -> FrameResult:
    return FrameResult(faces=list(faces), width=640, height=480, timestamp=t)


def test_iou_and_distance_numbers():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert iou_matrix(a, b)[0] == pytest.approx([50 / 150, 0.0])
    assert centre_distance(a[:1], b[:1])[0, 0] == pytest.approx(0.5)
    assert iou_matrix(a[:0], b).shape == (0, 2)


def test_greedy_match_takes_the_best_pairs_first():
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(score, lambda s: s > 0.05)) == [(0, 0), (1, 1)]
    assert greedy_match(score, lambda s: s > 0.5) == [(0, 0)]


def test_moving_faces_keep_their_ids_even_when_they_swap_order():
    tracker = FaceTracker(half_life=0)
    ids = []
    for step in range(20):
        # two faces crossing paths vertically separated, listed in a shuffled order each frame
        a, b = face(10 + 8 * step, 50), face(300 - 8 * step, 200)
        faces = [a, b] if step % 2 else [b, a]
        tracker.update(frame(faces, step / 10))
        ids.append((a.track_id, b.track_id))
    assert len(set(ids)) == 1 and set(ids[0]) == {1, 2}


def test_jump_beyond_iou_is_matched_by_centre_distance():
    tracker = FaceTracker(half_life=0)
    f0 = face(100, 100)
    tracker.update(frame([f0], 0.0))
    f1 = face(140, 100)                       # IoU 0.11 with the old box, centre 0.8 face sizes away
    tracker.update(frame([f1], 0.1))
    assert f1.track_id == f0.track_id == 1
    f2 = face(400, 100)                       # far away: a new face
    tracker.update(frame([f1, f2], 0.2))
    assert f2.track_id == 2


def test_track_survives_missed_frames_then_ends():
    tracker = FaceTracker(half_life=0, max_missed=3)
    tracker.update(frame([face(100, 100)], 0.0))
    for t in range(1, 4):
        tracker.update(frame([], t / 10))
    back = face(102, 100)
    tracker.update(frame([back], 0.4))
    assert back.track_id == 1
    for t in range(5, 10):
        tracker.update(frame([], t / 10))
    late = face(100, 100)
    tracker.update(frame([late], 1.0))
    assert late.track_id == 2


def test_ema_with_half_life():
    tracker = FaceTracker(half_life=0.5)
    first = face(100, 100, probs=(1.0, 0.0))
    tracker.update(frame([first], 0.0))
    assert first.probabilities == {"happy": 1.0, "sad": 0.0}
    second = face(101, 100, probs=(0.0, 1.0))
    tracker.update(frame([second], 0.5))      # one half-life later: half old, half new
    assert second.probabilities["happy"] == pytest.approx(0.5)
    assert second.raw_probabilities == {"happy": 0.0, "sad": 1.0}
    third = face(102, 100, probs=(0.0, 1.0))
    tracker.update(frame([third], 1.0))
    assert third.probabilities["sad"] == pytest.approx(0.75)
    assert third.label == "sad" and third.confidence == pytest.approx(0.75)
    row = frame([third], 1.0).rows()[0]
    assert row["raw_label"] == "sad" and row["p_sad"] == pytest.approx(0.75)


def test_no_smoothing_leaves_probabilities_alone():
    tracker = FaceTracker(half_life=0)
    f = face(0, 0, probs=(0.2, 0.8))
    tracker.update(frame([f], 0.0))
    assert f.raw_probabilities is None and f.probabilities == {"happy": 0.2, "sad": 0.8}


def test_lost_face_keeps_its_id_for_the_patience_in_seconds():
    # 30 fps: the face is missing for 15 frames (0.5 s), then back near where it was
    for patience, expected in ((1.0, 1), (0.3, 2)):
        tracker = FaceTracker(half_life=0, patience=patience)
        for i in range(10):
            tracker.update(frame([face(100 + 2 * i, 100)], i / 30))
        for i in range(10, 25):
            tracker.update(frame([], i / 30))
        back = face(125, 102)
        tracker.update(frame([back], 25 / 30))
        assert back.track_id == expected


def test_a_lost_face_is_sought_where_it_vanished_not_along_its_old_motion():
    tracker = FaceTracker(half_life=0, patience=1.0)
    for i in range(10):                          # moving right 10 px a frame
        tracker.update(frame([face(100 + 10 * i, 100)], i / 30))
    for i in range(10, 25):                      # hidden; pure extrapolation would put it 150 px further
        tracker.update(frame([], i / 30))
    back = face(200, 100)                        # it stopped behind the cover
    tracker.update(frame([back], 25 / 30))
    assert back.track_id == 1


def test_a_face_of_another_size_is_not_taken_for_a_lost_one():
    tracker = FaceTracker(half_life=0, patience=1.0)
    tracker.update(frame([face(100, 100, size=50)], 0.0))
    tracker.update(frame([], 0.1))
    big = face(90, 90, size=100)                 # centre 0.5 face sizes away, but twice as big: someone else
    tracker.update(frame([big], 0.2))
    assert big.track_id == 2
    same = face(105, 100, size=55)
    tracker2 = FaceTracker(half_life=0, patience=1.0)
    tracker2.update(frame([face(100, 100, size=50)], 0.0))
    tracker2.update(frame([], 0.1))
    tracker2.update(frame([same], 0.2))
    assert same.track_id == 1


def test_known_ids_and_rescaled_frames():
    tracker = FaceTracker(half_life=0)
    a, b = face(100, 100), face(300, 100)
    tracker.update(frame([a, b], 0.0))
    # the caller knows which track each face is (carried faces): no matching, even across a swap
    c, d = face(300, 100), face(100, 100)
    tracker.update(frame([c, d], 0.1), ids=[a.track_id, b.track_id])
    assert (c.track_id, d.track_id) == (a.track_id, b.track_id)
    tracker = FaceTracker(half_life=0)
    tracker.update(frame([face(100, 100), face(300, 100)], 0.0))
    tracker.rescale(0.5, 0.5)                    # frames now half the size: boxes follow
    assert tracker.tracks[1].box.tolist() == [150.0, 50.0, 175.0, 75.0]
    e = face(150, 50, size=25)
    tracker.update(frame([e], 0.1))
    assert e.track_id == 2
