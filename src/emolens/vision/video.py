"""Read videos frame by frame (never whole in memory) and write annotated ones as H.264 MP4, both
through PyAV (FFmpeg's libraries, libx264 included, ship inside its wheels), so that browsers play
what we write; every output appears under its final name only once it is complete. An annotated
video keeps its source's audio track (copied, or re-encoded when the output container cannot hold
its codec)."""

from __future__ import annotations

import heapq
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import VideoError

#: Output suffix -> (container format, codec): H.264 in MP4/MOV plays in every browser; AVI gets
#: Motion JPEG for old players.
WRITERS = {".mp4": ("mp4", "libx264"), ".m4v": ("mp4", "libx264"), ".mov": ("mov", "libx264"),
           ".avi": ("avi", "mjpeg")}

#: File name endings that a folder walk (``emolens batch``) treats as videos.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
                              ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"})


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int          # from the container header; 0 when unknown (streams), may be wrong
    width: int
    height: int


@dataclass(frozen=True)
class Segment:
    """A stretch of a video that starts at a keyframe, decoded on its own (``emolens batch
    --segment``): frames ``first_frame`` .. ``first_frame + frames - 1`` of the whole file, numbered
    as a reading of the whole file numbers them; ``start_pts``: the keyframe's presentation time in
    the stream's time base (None: the file's start)."""

    index: int                # 0-based, in file order
    count: int                # segments in the file
    first_frame: int
    frames: int
    start_pts: int | None = None


@dataclass
class VideoFrame:
    index: int                # 0-based frame number in the file
    timestamp: float          # seconds
    bgr: np.ndarray


class VideoReader:
    """Frames of a video file (or stream URL) as BGR uint8 arrays, in order, one at a time, decoded
    by PyAV. Each frame keeps its own size: a video whose resolution changes mid-way (a stream
    that adapts, concatenated clips) gives frames of the new size from then on."""

    def __init__(self, path: str | Path, threads: int = 0, file=None):
        import av

        self.path = str(path)
        if file is None and (isinstance(path, Path) or not str(path).startswith(("rtsp:", "http:", "https:"))):
            p = Path(path)
            if not p.exists():
                raise VideoError(f"{p}: no such file")
            if p.is_dir():
                raise VideoError(f"{p}: is a folder, not a video")
            if p.stat().st_size == 0:
                raise VideoError(f"{p}: empty file (0 bytes)")
        try:
            self.container = av.open(self.path if file is None else file, metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise VideoError(f"{self.path}: cannot be opened as a video (not a video, or damaged: "
                             f"{getattr(e, 'strerror', None) or e})") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        rate = self.stream.average_rate or self.stream.guessed_rate
        fps = float(rate) if rate else 0.0
        self.info = VideoInfo(self.path, fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
                              max(int(self.stream.frames or 0), 0), int(self.stream.codec_context.width or 0),
                              int(self.stream.codec_context.height or 0))
        self.frames_read = 0

    @property
    def ended_early(self) -> bool:
        """True when reading stopped well before the frame count the header promised (a truncated file)."""
        expected = self.info.frame_count
        return expected > 0 and self.frames_read < expected - max(2, expected // 100)

    def frames(self, every: int = 1, segment: Segment | None = None) -> Iterator[VideoFrame]:
        """Every ``every``-th frame (0, N, 2N...); skipped frames are decoded but not converted.

        ``segment``: only its frames, decoded from its keyframe on (the file is seeked there), with
        the indices and timestamps a reading of the whole file gives them."""
        import av

        every = max(1, int(every))
        index, end, start_pts = 0, None, None
        if segment is not None:
            index, end, start_pts = segment.first_frame, segment.first_frame + segment.frames, segment.start_pts
            if start_pts is not None:
                self.container.seek(start_pts, stream=self.stream, backward=True, any_frame=False)
        try:
            for frame in self.container.decode(self.stream):
                if start_pts is not None and frame.pts is not None and frame.pts < start_pts:
                    continue                 # decoded on the way to the segment's keyframe
                if end is not None and index >= end:
                    break
                if index % every == 0:
                    ts = index / self.info.fps if self.info.fps else float(frame.time or 0.0)
                    bgr = frame.to_ndarray(format="bgr24")
                    self.frames_read = index + 1
                    yield VideoFrame(index, float(ts), bgr)
                index += 1
                self.frames_read = index
        except av.error.FFmpegError:
            pass                 # damaged or cut short: the frames read so far stand (see ended_early)
        if self.frames_read == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (damaged file or unsupported codec)")

    def close(self) -> None:
        self.container.close()


def plan_segments(path: str | Path, seconds: float, file=None) -> list[Segment]:
    """Split a video at keyframes into segments of at least ``seconds`` each (the last may be
    shorter), read from its packets (nothing is decoded). One segment, the whole file, when
    ``seconds`` is 0, the file has no keyframe to split at, or its packets carry no timestamps."""
    from bisect import bisect_left

    reader = VideoReader(path, file=file)
    try:
        stream, pts, keys = reader.stream, [], []
        for packet in reader.container.demux(stream):
            if packet.size == 0:
                continue                               # the demuxer's flush packet
            if packet.pts is None:
                return [Segment(0, 1, 0, reader.info.frame_count or 0)]
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        fps, base = reader.info.fps, float(stream.time_base or 0)
    finally:
        reader.close()
    pts.sort()
    whole = [Segment(0, 1, 0, len(pts))]
    if seconds <= 0 or not pts or not (fps or base):
        return whole
    starts = []                                        # (first frame, keyframe pts) of each segment
    for key in sorted(set(keys)):
        first = bisect_left(pts, key)
        when = first / fps if fps else (key - pts[0]) * base
        if not starts or when - starts[-1][2] >= seconds:
            starts.append((first, key, when))
    if not starts or starts[0][0] != 0:
        starts.insert(0, (0, None, 0.0))               # frames before the first keyframe join the first segment
    if len(starts) == 1:
        return whole
    starts[0] = (0, None, 0.0)                         # the first segment is read from the file's start
    ends = [s[0] for s in starts[1:]] + [len(pts)]
    return [Segment(i, len(starts), first, end - first, key)
            for i, ((first, key, _), end) in enumerate(zip(starts, ends))]


@contextmanager
def iter_video(path, every: int = 1):
    """``with iter_video(path) as frames: for f in frames: ...``; the file is closed afterwards."""
    reader = VideoReader(path)
    try:
        yield reader.frames(every)
    finally:
        reader.close()


@contextmanager
def atomic_path(path: str | Path):
    """``with atomic_path(p) as tmp: write(tmp)``: the file is written under a temporary name in the
    same folder and renamed to ``p`` only when the block ends without an error (else removed), so a
    run that is killed never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".part{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class VideoWriter:
    """Write BGR frames to ``path`` (.mp4/.m4v/.mov: H.264 yuv420p; .avi: Motion JPEG) via PyAV.

    The file is encoded under a temporary name beside ``path`` and renamed by :meth:`close`;
    :meth:`abort` (or an exception inside ``with``) drops it. Frames of another size than the
    first are scaled to it (the output video has one size). ``threads``: encoder threads (0: auto).
    ``audio_from``: a video file whose first audio track :meth:`close` adds (:func:`add_audio`);
    the frames written should be all of that file's, from its first.
    """

    def __init__(self, path: str | Path, fps: float, width: int, height: int, crf: int = 23,
                 preset: str = "veryfast", threads: int = 0, audio_from: str | Path | None = None):
        try:
            import av
        except ImportError as e:  # a base dependency; only a broken install lacks it
            raise VideoError("writing videos needs PyAV: pip install av") from e
        self.path = Path(path)
        kind = WRITERS.get(self.path.suffix.lower())
        if kind is None:
            raise VideoError(f"{self.path}: cannot write this kind of video; use one of {', '.join(sorted(WRITERS))}")
        fmt, codec = kind
        self.size = (width - width % 2, height - height % 2)     # yuv420p needs even sides
        self.audio_from = audio_from
        self.audio = False                                       # True once close() added the audio track
        self._atomic = atomic_path(self.path)
        self._tmp = tmp = self._atomic.__enter__()
        try:
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            self.container = av.open(str(tmp), "w", format=fmt, options=options)
            rate = Fraction(fps if fps and fps > 0 else 25.0).limit_denominator(1001)
            self.stream = self.container.add_stream(codec, rate=rate)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p" if codec == "libx264" else "yuvj420p"
            self.stream.codec_context.thread_count = threads
            if codec == "libx264":
                self.stream.options = {"crf": str(crf), "preset": preset}
        except Exception as e:
            self._atomic.__exit__(type(e), e, None)
            raise VideoError(f"{self.path}: cannot open for writing ({e})") from e
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        import av
        import cv2

        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, close the file, add the audio track and give it its final name."""
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            if self.audio_from is not None:
                self.audio = add_audio(self._tmp, self.audio_from)
        except Exception as e:
            self._atomic.__exit__(type(e), e, None)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; ``path`` is left as it was."""
        try:
            self.container.close()
        finally:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def has_audio(path: str | Path) -> bool:
    """True when ``path`` is a local video file with an audio track."""
    import av

    if not Path(path).is_file():
        return False
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, UnicodeDecodeError):
        return False


def add_audio(video: str | Path, source: str | Path) -> bool:
    """Give the video file ``video`` (written by :class:`VideoWriter`) the first audio track of
    ``source``, in place (atomically): its video copied as it is, the audio copied packet by packet
    and kept in time with the source's video, or re-encoded (AAC, else MP3 or PCM) when the
    container of ``video`` cannot hold its codec. False (``video`` unchanged) when ``source`` has
    no audio track."""
    import av

    if not has_audio(source):
        return False
    video = Path(video)
    try:
        _mux_audio(video, source, copy=True)
    except (av.error.FFmpegError, ValueError):       # the container refuses the codec: re-encode it
        _mux_audio(video, source, copy=False)
    return True


def _mux_audio(video: Path, source, copy: bool) -> None:
    import av

    fmt = WRITERS[video.suffix.lower()][0]
    options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with atomic_path(video) as tmp:
        with av.open(str(video)) as picture, av.open(str(source), metadata_errors="ignore") as sound, \
                av.open(str(tmp), "w", format=fmt, options=options) as out:
            v_in, a_in = picture.streams.video[0], sound.streams.audio[0]
            v_out = out.add_stream_from_template(v_in)
            if copy:
                a_out = out.add_stream_from_template(a_in)
            else:
                codec = next(c for c in ("aac", "libmp3lame", "pcm_s16le")
                             if c in av.codecs_available and c in out.supported_codecs)
                a_out = out.add_stream(codec, rate=a_in.codec_context.sample_rate, layout=a_in.codec_context.layout)
            # the source's first video frame became frame 0: the audio moves by as much, to stay in time
            first = sound.streams.video[0] if sound.streams.video else None
            shift = float(first.start_time * first.time_base) if first is not None and first.start_time else 0.0

            def when(packet) -> float:
                return float(packet.dts * packet.time_base) - (shift if packet.stream.type == "audio" else 0.0)

            videos = (p for p in picture.demux(v_in) if p.dts is not None)
            sounds = (p for p in sound.demux(a_in) if p.dts is not None)
            for packet in heapq.merge(videos, sounds, key=when):   # interleaved by time, as players read
                if packet.stream.type == "video":
                    packet.stream = v_out
                    out.mux(packet)
                    continue
                if shift:
                    moved = round(shift / packet.time_base)
                    packet.dts -= moved
                    if packet.pts is not None:
                        packet.pts -= moved
                if copy:
                    packet.stream = a_out
                    out.mux(packet)
                else:
                    for frame in packet.decode():
                        frame.pts = None
                        out.mux(a_out.encode(frame))
            if not copy:
                out.mux(a_out.encode(None))


def open_writer(path: str | Path, fps: float, width: int, height: int, **options) -> VideoWriter:
    """A :class:`VideoWriter` for ``path`` (.mp4, .m4v, .mov or .avi)."""
    return VideoWriter(path, fps, width, height, **options)
