"""``emolens video``: stream a video through the recogniser with tracking, and write the annotated
video (H.264 MP4, with the input's audio track), the per-frame per-face CSV, a timeline plot per track and one overview plot,
with a progress bar. Every output is written under a temporary name beside its final one and
renamed when complete, so a run that is interrupted (even killed) leaves no half-written file."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .draw import annotate
from .timeline import TimelineWriter
from .video import VideoReader, open_writer


@dataclass
class VideoSummary:
    source: str
    frames_read: int
    frames_processed: int
    faces: int
    tracks: int
    expected_frames: int
    ended_early: bool
    seconds: float
    video: Path | None = None
    csv: Path | None = None
    plots: list[Path] = field(default_factory=list)
    detections: int = 0                    # frames on which the face detector ran
    overview: Path | None = None
    audio: bool = False                    # the annotated video kept the input's audio track


def process_video(recognizer, source, out=None, csv_path=None, plots_dir=None, every: int = 1,
                  half_life: float = 0.5, progress: bool = True, min_track_points: int = 3,
                  detect_every: int | None = None, patience: float | None = None,
                  encoder_threads: int = 0) -> VideoSummary:
    """Run ``recognizer`` on every ``every``-th frame of ``source``; every frame of the annotated
    output shows the latest results, so it keeps the input's length and frame rate.

    ``detect_every``, ``patience``: see :meth:`emolens.Recognizer.tracker`; frames whose size
    changes mid-video are recognised in their own pixels and scaled to the first frame's size in
    the annotated output."""
    from tqdm import tqdm

    from ..files import refuse_overwriting

    refuse_overwriting([p for p in (out, csv_path) if p], [source], "output path")
    reader = VideoReader(source)
    info = reader.info
    tracker = recognizer.tracker(detect_every=detect_every, half_life=half_life, patience=patience)
    timeline = TimelineWriter(csv_path, recognizer.classes)
    writer = None
    started, processed, faces, last = time.perf_counter(), 0, 0, None
    bar = tqdm(total=info.frame_count or None, unit="frame", desc=Path(str(source)).name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        # With no video to write, skipped frames are decoded but never converted to arrays.
        for item in reader.frames(1 if out is not None else every):
            if item.index % max(1, every) == 0:
                last = tracker.update(item.bgr, bgr=True, index=item.index, timestamp=item.timestamp,
                                      source=str(source))
                timeline.add(last)
                processed += 1
                faces += len(last.faces)
            if out is not None:
                if writer is None:
                    h, w = item.bgr.shape[:2]
                    writer = open_writer(out, info.fps, w, h, threads=encoder_threads, audio_from=source)
                same_size = last is not None and (last.width, last.height) == item.bgr.shape[1::-1]
                writer.write(annotate(item.bgr, last) if same_size else item.bgr)
            bar.update(reader.frames_read - bar.n)
            bar.set_postfix(faces=len(last.faces) if last else 0, tracks=len(tracker.faces.tracks), refresh=False)
    except BaseException:
        timeline.abort()
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        reader.close()
    if writer is not None:
        writer.close()
    timeline.close()
    elapsed = time.perf_counter() - started
    plots, overview = [], None
    if plots_dir is not None:
        stem = Path(csv_path).stem if csv_path else Path(str(source)).stem
        plots = timeline.plot_tracks(plots_dir, stem, min_track_points)
        overview = timeline.plot_overview(Path(plots_dir) / f"{stem}_overview.png", min_track_points)
    return VideoSummary(str(source), reader.frames_read, processed, faces, len(timeline.series), info.frame_count,
                        reader.ended_early, elapsed, Path(out) if out else None,
                        Path(csv_path) if csv_path else None, plots, tracker.detections, overview,
                        writer is not None and writer.audio)
