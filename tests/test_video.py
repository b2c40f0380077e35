"""Videos: streamed frames, stable track ids for five moving faces, CSV/plots/annotated output,
and videos that cannot be opened or end early."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens.assets import face_frame
from emolens.vision.errors import VideoError
from emolens.vision.video import VideoReader
from emolens.vision.video_job import process_video

cv2.setNumThreads(1)

N_FRAMES = 24


def write_video(path: Path, n_frames: int = N_FRAMES, n_faces: int = 5, fps: float = 12.0) -> Path:
    """Five astronaut heads drifting right and bobbing up and down, as an MJPG AVI."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(face_frame(n_faces, offset=(3 * i - 36, int(8 * np.sin(i / 3))))[..., ::-1])
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "five.avi")


@pytest.fixture(scope="module")
def rec(tiny_model):
    return emolens.Recognizer(model=str(tiny_model))


def test_reader_streams_frames_with_timestamps(video):
    reader = VideoReader(video)
    assert (reader.info.width, reader.info.height, reader.info.frame_count) == (640, 480, N_FRAMES)
    assert reader.info.fps == pytest.approx(12.0)
    frames = reader.frames(every=5)
    first = next(frames)
    assert first.index == 0 and first.bgr.shape == (480, 640, 3)
    rest = list(frames)
    assert [f.index for f in rest] == [5, 10, 15, 20]
    assert rest[0].timestamp == pytest.approx(5 / 12)
    assert reader.frames_read == N_FRAMES and not reader.ended_early


@pytest.mark.parametrize("every", [1, 3])
def test_five_moving_faces_keep_five_stable_ids(rec, video, every):
    frames = list(rec.predict_video(video, every=every))
    assert [f.frame_index for f in frames] == list(range(0, N_FRAMES, every))
    x_of_id = defaultdict(list)
    for f in frames:
        assert len(f.faces) == 5
        ids = [face.track_id for face in f.faces]
        assert len(set(ids)) == 5
        for face in f.faces:
            x_of_id[face.track_id].append(face.box[0])
    assert sorted(x_of_id) == [1, 2, 3, 4, 5]
    # each id follows one face: its x moves by the drift (3 px a frame), never jumps to a neighbour
    for xs in x_of_id.values():
        steps = np.diff(xs)
        assert np.all(np.abs(steps - 3 * every) < 6)
    smoothed = frames[-1].faces[0]
    assert smoothed.raw_probabilities is not None
    assert sum(smoothed.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_process_video_writes_csv_plots_and_annotated_video(rec, video, tmp_path):
    out, table = tmp_path / "annotated.mp4", tmp_path / "timeline.csv"
    summary = process_video(rec, video, out=out, csv_path=table, plots_dir=tmp_path, every=2, progress=False)
    assert (summary.frames_read, summary.frames_processed, summary.faces, summary.tracks) == (N_FRAMES, 12, 60, 5)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 60
    assert rows[0].keys() >= {"frame_index", "timestamp", "track_id", "label", "p_happy", "raw_label"}
    assert sorted({r["track_id"] for r in rows}) == ["1", "2", "3", "4", "5"]
    assert sorted(p.name for p in summary.plots) == [f"timeline_track{i}.png" for i in range(1, 6)]
    assert all(p.stat().st_size > 5000 for p in summary.plots)
    annotated = VideoReader(out)
    assert annotated.info.frame_count == N_FRAMES and (annotated.info.width, annotated.info.height) == (640, 480)
    annotated.close()


def test_video_that_ends_early_is_reported_not_fatal(rec, video, tmp_path):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    summary = process_video(rec, cut, csv_path=tmp_path / "cut.csv", progress=False)
    assert 0 < summary.frames_read < N_FRAMES
    assert summary.ended_early and summary.expected_frames == N_FRAMES
    assert summary.faces == 5 * summary.frames_processed


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "empty file"),
    (b"this is not a video at all" * 40, "cannot be opened as a video|no frame could be decoded"),
], ids=["missing", "empty", "text"])
def test_unreadable_videos_raise_video_error(rec, tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=message) as info:
        list(rec.predict_video(path))
    assert "bad.mp4" in str(info.value)


def test_video_without_faces_gives_empty_frames(rec, tmp_path):
    path = write_video(tmp_path / "empty.avi", n_frames=4, n_faces=0)
    frames = list(rec.predict_video(path))
    assert len(frames) == 4 and all(f.faces == [] for f in frames)
