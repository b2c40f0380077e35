"""Videos: streamed frames, stable track ids for five moving faces, CSV/plots/annotated H.264
output written atomically (a run killed half way leaves no partial file), faces hidden for a
while keep their ids, detection every N frames with the faces carried in between, frames that
change size, several videos and images over worker processes, and videos that cannot be opened
or end early."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import cli_command

import emolens
from emolens.assets import face_frame
from emolens.vision.errors import VideoError
from emolens.vision.video import VideoReader, VideoWriter
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
    # five heads in a 640x480 frame have faces of ~40 px: detected at 480 (the stream default, 320,
    # misses some of them; docs/video.md)
    return emolens.Recognizer(model=str(tiny_model), max_side=480)


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
    assert summary.overview == tmp_path / "timeline_overview.png" and summary.overview.stat().st_size > 5000
    annotated = VideoReader(out)
    assert annotated.info.frame_count == N_FRAMES and (annotated.info.width, annotated.info.height) == (640, 480)
    assert annotated.stream.codec_context.name == "h264" and annotated.stream.codec_context.pix_fmt == "yuv420p"
    assert sum(1 for _ in annotated.frames()) == N_FRAMES
    annotated.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".part" in p.name) == []     # no temporary left over


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


# ---------------------------------------------------------------- helpers for the clips below

def hide(frame: np.ndarray, box, background: int = 96) -> np.ndarray:
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = background
    return frame


def two_faces(i: int, hidden: range = range(0), size=(640, 480)) -> np.ndarray:
    """Two astronaut heads drifting right (2 px a frame); the right one is painted over in ``hidden`` frames."""
    rgb = face_frame(2, size=size, offset=(2 * i - 30, 0))
    if i in hidden:
        hide(rgb, (size[0] // 2 - 30 + 2 * i, 0, size[0], size[1]))
    return rgb


def write_clip(path: Path, frames, fps: float = 30.0) -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps, w, h) as writer:
        for rgb in frames:
            writer.write(rgb[..., ::-1])
    return path


def track_ids(frames) -> list[int]:
    return sorted({f.track_id for frame in frames for f in frame.faces})


# ---------------------------------------------------------------- tracking through a hidden face

@pytest.mark.parametrize("detect_every", [1, 5, None], ids=["1", "5", "default"])
def test_face_hidden_for_half_a_second_keeps_its_id(rec, detect_every):
    hidden = range(20, 35)                                        # 15 frames at 30 fps
    frames = [two_faces(i, hidden) for i in range(50)]
    results = list(rec.stream(frames, fps=30, detect_every=detect_every))
    assert [len(r.faces) for r in results[:20]] == [2] * 20
    assert all(len(results[i].faces) == 1 for i in hidden)         # the hidden face is not carried on
    # while a face is missing the detector looks on every frame: found again as soon as it is back
    assert [len(r.faces) for r in results[35:]] == [2] * 15
    assert track_ids(results) == [1, 2]
    assert [f.track_id for f in results[-1].faces] == [1, 2]        # left to right, as at the start
    # with a patience shorter than the gap, the face comes back as a new track
    impatient = list(rec.stream(frames, fps=30, detect_every=detect_every, patience=0.2))
    assert track_ids(impatient) == [1, 2, 3]


def test_hidden_face_is_dropped_on_the_frame_it_vanishes_even_between_detections(rec):
    tracker = rec.tracker(detect_every=10)
    counts = []
    for i in range(12):
        counts.append(len(tracker.update(two_faces(i, hidden=range(4, 12)), timestamp=i / 30).faces))
    assert counts == [2, 2, 2, 2] + [1] * 8
    # frames 0-3: one detection; from frame 4 (a face lost) the detector looks on every frame
    assert tracker.detections == 1 + 8


# ---------------------------------------------------------------- detection every N frames

def test_detect_every_carries_faces_and_agrees_with_detecting_every_frame(rec, video):
    every_frame = list(rec.predict_video(video, detect_every=1))
    tracker_frames = list(rec.predict_video(video, detect_every=4))
    assert [len(f.faces) for f in tracker_frames] == [5] * N_FRAMES
    detected = [f for f in tracker_frames if "detect" in f.timings_ms]
    assert [f.frame_index for f in detected] == list(range(0, N_FRAMES, 4))
    for a, b in zip(every_frame, tracker_frames):
        assert [f.track_id for f in a.faces] == [f.track_id for f in b.faces]
        boxes_a, boxes_b = np.array([f.box for f in a.faces]), np.array([f.box for f in b.faces])
        assert np.abs(boxes_a - boxes_b).max() < 6                  # carried boxes stay on the faces (~100 px)
        assert [f.label for f in a.faces] == [f.label for f in b.faces]


def test_sharp_confidence_drop_sends_the_frame_back_to_the_detector(rec, video):
    from emolens.vision.streaming import StreamTracker

    # a drop threshold below zero counts every carried frame as a drop: every frame is detected
    strict = StreamTracker(rec.pipeline, detect_every=4, confidence_drop=-1.0)
    with emolens.vision.video.iter_video(video) as frames:
        for item in frames:
            strict.update(item.bgr, bgr=True, timestamp=item.timestamp)
    assert strict.detections == strict.frames == N_FRAMES


def test_face_leaving_the_frame_is_looked_for_again_at_once(rec):
    tracker = rec.tracker(detect_every=100)
    # one face sliding left, 12 px a frame, until it leaves the picture
    frames = [face_frame(1, offset=(-12 * i, 0)) for i in range(30)]
    counts = [len(tracker.update(rgb, timestamp=i / 30).faces) for i, rgb in enumerate(frames)]
    assert counts[0] == 1 and counts[-1] == 0
    # carried boxes never stick out of the picture: the detector takes over at the edge
    assert tracker.detections > 1


def test_frames_that_change_size_are_handled_in_their_own_pixels(rec, tmp_path):
    # two H.264 segments, 640x480 then 320x240, one after the other in an MPEG-TS (as a stream that adapts)
    parts = []
    for n, size in enumerate([(640, 480), (320, 240)]):
        part = tmp_path / f"part{n}.ts"
        container = av.open(str(part), "w", format="mpegts")
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(10):
            rgb = face_frame(1, size=size, offset=(i, 0))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
        container.close()
        parts.append(part.read_bytes())
    clip = tmp_path / "resized.ts"
    clip.write_bytes(b"".join(parts))
    frames = list(rec.predict_video(clip))
    assert [(f.width, f.height) for f in frames] == [(640, 480)] * 10 + [(320, 240)] * 10
    assert all(len(f.faces) == 1 for f in frames) and track_ids(frames) == [1]
    big, small = np.array(frames[9].faces[0].box), np.array(frames[10].faces[0].box)
    assert np.abs(big / 2 - small).max() < 8       # the same face (~80 px), in each frame's own pixels
    out = tmp_path / "resized.mp4"
    summary = process_video(rec, clip, out=out, csv_path=tmp_path / "resized.csv", progress=False)
    assert summary.frames_processed == 20
    with av.open(str(out)) as written:                              # one size out: the first frame's
        sizes = {(f.width, f.height) for f in written.decode(video=0)}
    assert sizes == {(640, 480)}


# ---------------------------------------------------------------- atomic outputs

def test_killed_run_leaves_no_partial_outputs(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "long.mp4", (face_frame(1, offset=(i % 40, 0)) for i in range(240)))
    out, table = tmp_path / "out" / "annotated.mp4", tmp_path / "out" / "timeline.csv"
    command = cli_command("video", str(clip), "--out", str(out), "--csv", str(table), "--model", str(tiny_model),
                          "--detect-every", "1", "--threads", "1", "--no-progress")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # wait until rows have reached the (temporary) CSV on disk: the run is under way
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(out.parent.glob(".timeline.*.part.csv")) if out.parent.exists() else []
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists() and not table.exists()                 # never a half-written file under the final name
    # finished, the same command leaves complete files
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(csv.DictReader(table.open()))) == 240
    with av.open(str(out)) as written:
        assert sum(1 for _ in written.decode(video=0)) == 240


# ---------------------------------------------------------------- worker processes

def test_two_workers_give_the_same_results_as_one(tiny_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        cv2.imwrite(str(images / f"img{i}.png"), face_frame(1 + i % 3, offset=(5 * i, 0))[..., ::-1])
    clips = [write_clip(tmp_path / f"clip{i}.mp4", (two_faces(j + 3 * i) for j in range(12))) for i in range(3)]
    outputs = {}
    for workers in (1, 2):
        base = tmp_path / f"w{workers}"
        common = ["--model", str(tiny_model), "--workers", str(workers), "--no-progress"]
        run = subprocess.run(cli_command("predict", str(images), "--json", str(base / "predict.json"), "-q", *common),
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        run = subprocess.run(cli_command("video", *map(str, clips), "--csv", str(base / "csv"), "--no-plots", *common),
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        predicted = json.loads((base / "predict.json").read_text())["images"]
        for image in predicted:
            image["timings_ms"] = {}
        tables = {p.name: p.read_text() for p in sorted((base / "csv").iterdir())}
        outputs[workers] = (predicted, tables)
    assert len(outputs[1][0]) == 5 and sum(len(i["faces"]) for i in outputs[1][0]) == 1 + 2 + 3 + 1 + 2
    assert sorted(outputs[1][1]) == [f"clip{i}_timeline.csv" for i in range(3)]
    assert outputs[2] == outputs[1]


# ---------------------------------------------------------------- results draw and save themselves

def test_results_plot_and_save(rec, tmp_path):
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), face_frame(2)[..., ::-1])
    frame = rec.predict(path)
    drawn = frame.plot()
    original = cv2.imread(str(path))
    assert drawn.shape == original.shape and (drawn != original).any()
    assert (frame.plot(original) == drawn).all() and (cv2.imread(str(path)) == original).all()
    assert frame.save(tmp_path / "a.jpg").stat().st_size > 1000
    saved = json.loads(frame.save(tmp_path / "a.json").read_text())
    assert len(saved["faces"]) == 2
    batch = rec.predict_batch([path, path])
    assert len(batch.plot()) == 2
    rows = list(csv.DictReader(batch.save(tmp_path / "all.csv").open()))
    assert len(rows) == 4 and rows[0]["source"] == str(path)
    with pytest.raises(emolens.errors.EmolensError, match="a.txt"):
        frame.save(tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()


def test_bad_worker_count_and_patience_are_one_line_errors(tiny_model, video, capsys):
    from emolens.cli import main

    assert main(["video", str(video), "--model", str(tiny_model), "--workers", "0", "--no-progress"]) == 2
    assert main(["video", str(video), "--model", str(tiny_model), "--track-patience", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--workers must be at least 1" in err[0] and "patience" in err[1]
