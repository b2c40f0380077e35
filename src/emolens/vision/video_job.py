"""``emolens video``: stream a video through the recogniser with tracking, and write the annotated
video, the per-frame per-face CSV and a timeline plot per track, with a progress bar."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .draw import annotate
from .timeline import TimelineWriter
from .tracking import FaceTracker
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


def process_video(recognizer, source, out=None, csv_path=None, plots_dir=None, every: int = 1,
                  half_life: float = 0.5, progress: bool = True, min_track_points: int = 3) -> VideoSummary:
    """Run ``recognizer`` on every ``every``-th frame of ``source``; every frame of the annotated
    output shows the latest results, so it keeps the input's length and frame rate."""
    from tqdm import tqdm

    reader = VideoReader(source)
    info = reader.info
    tracker = FaceTracker(half_life=half_life)
    timeline = TimelineWriter(csv_path, recognizer.classes)
    writer = None
    started, processed, faces, last = time.perf_counter(), 0, 0, None
    bar = tqdm(total=info.frame_count or None, unit="frame", desc=Path(str(source)).name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        # With no video to write, skipped frames are only grabbed, not decoded.
        for item in reader.frames(1 if out is not None else every):
            if item.index % max(1, every) == 0:
                last = recognizer.track_frame(item.bgr, tracker, item.index, item.timestamp, str(source))
                timeline.add(last)
                processed += 1
                faces += len(last.faces)
            if out is not None:
                if writer is None:
                    h, w = item.bgr.shape[:2]
                    writer = open_writer(out, info.fps, w, h)
                writer.write(annotate(item.bgr, last) if last is not None else item.bgr)
            bar.update(reader.frames_read - bar.n)
            bar.set_postfix(faces=len(last.faces) if last else 0, tracks=len(tracker.tracks), refresh=False)
    finally:
        bar.close()
        reader.close()
        timeline.close()
        if writer is not None:
            writer.release()
    elapsed = time.perf_counter() - started
    plots = []
    if plots_dir is not None:
        stem = Path(csv_path).stem if csv_path else Path(str(source)).stem
        plots = timeline.plot_tracks(plots_dir, stem, min_track_points)
    return VideoSummary(str(source), reader.frames_read, processed, faces, len(timeline.series), info.frame_count,
                        reader.ended_early, elapsed, Path(out) if out else None,
                        Path(csv_path) if csv_path else None, plots)
