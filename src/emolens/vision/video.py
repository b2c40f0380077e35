"""Read videos frame by frame (never whole in memory) and write annotated ones, with OpenCV."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import VideoError

#: Output container -> codec (FourCC) that OpenCV's bundled FFmpeg writes without extra libraries.
WRITERS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int          # from the container header; 0 when unknown (streams), may be wrong
    width: int
    height: int


@dataclass
class VideoFrame:
    index: int                # 0-based frame number in the file
    timestamp: float          # seconds
    bgr: np.ndarray


class VideoReader:
    """Frames of a video file (or camera URL) as BGR uint8 arrays, in order, one at a time."""

    def __init__(self, path: str | Path):
        import cv2

        self.path = str(path)
        if isinstance(path, Path) or not str(path).startswith(("rtsp:", "http:", "https:")):
            p = Path(path)
            if not p.exists():
                raise VideoError(f"{p}: no such file")
            if p.is_dir():
                raise VideoError(f"{p}: is a folder, not a video")
            if p.stat().st_size == 0:
                raise VideoError(f"{p}: empty file (0 bytes)")
        # FFmpeg's own log lines ("moov atom not found"...) would precede our one-line error; OpenCV
        # reads this once, at its first capture. Set it to 16 (errors) or more to see them again.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        self.cap = cv2.VideoCapture(self.path)
        if not self.cap.isOpened():
            raise VideoError(f"{self.path}: cannot be opened as a video (not a video, damaged, or a codec "
                             "OpenCV cannot decode)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0)
        self.info = VideoInfo(self.path, fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
                              max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
                              int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                              int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
        self.frames_read = 0

    @property
    def ended_early(self) -> bool:
        """True when reading stopped well before the frame count the header promised (a truncated file)."""
        expected = self.info.frame_count
        return expected > 0 and self.frames_read < expected - max(2, expected // 100)

    def frames(self, every: int = 1) -> Iterator[VideoFrame]:
        """Every ``every``-th frame (0, N, 2N...); skipped frames are grabbed, not decoded to arrays."""
        import cv2

        every = max(1, int(every))
        index = 0
        while True:
            if index % every:
                if not self.cap.grab():
                    break
            else:
                ok, bgr = self.cap.read()
                if not ok or bgr is None:
                    break
                ts = index / self.info.fps if self.info.fps else self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                self.frames_read = index + 1
                yield VideoFrame(index, float(ts), bgr)
            index += 1
            self.frames_read = index
        if self.frames_read == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (damaged file or unsupported codec)")

    def close(self) -> None:
        self.cap.release()


@contextmanager
def iter_video(path, every: int = 1):
    """``with iter_video(path) as frames: for f in frames: ...``; the file is closed afterwards."""
    reader = VideoReader(path)
    try:
        yield reader.frames(every)
    finally:
        reader.close()


def open_writer(path: str | Path, fps: float, width: int, height: int):
    """A cv2.VideoWriter for ``path`` (.mp4, .m4v, .mov or .avi)."""
    import cv2

    path = Path(path)
    codec = WRITERS.get(path.suffix.lower())
    if codec is None:
        raise VideoError(f"{path}: cannot write this kind of video; use one of {', '.join(sorted(WRITERS))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps or 25.0, (width, height))
    if not writer.isOpened():
        raise VideoError(f"{path}: cannot open for writing ({codec} codec)")
    return writer
