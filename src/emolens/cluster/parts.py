"""The engine-neutral core of ``emolens batch``: a chunk of inputs -> one Parquet part.

:func:`run_part` is the one task every engine runs (Dask here; a Ray or Daft runner would call
the same function): it recognises a chunk (images together, in one batch as ``emolens predict``
does; each video or video segment through the stream tracker as ``emolens video`` does), and
writes the rows as ``part-<hash>.parquet``, under a temporary name first and renamed when
complete, so a part is either whole or absent. The name is a hash of the job's settings and of
the inputs it covers: a task run twice (a worker killed, a job killed and rerun) writes the same
file again, never a second copy of its rows.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EmolensError
from .schema import Settings, error_row, frame_rows, row_schema, rows_table
from .sources import IMAGE, VIDEO, Input, is_url, open_file, read_bytes


@dataclass(frozen=True)
class Unit:
    """One piece of work: an image, a whole video, or one segment of a video."""

    source: str
    kind: str
    segment: object = None       # a vision.video.Segment, for a video split with --segment

    @property
    def key(self) -> str:
        """How the part files name what they cover: the source, and for a video its segment."""
        if self.kind != VIDEO:
            return self.source
        index, count = (self.segment.index, self.segment.count) if self.segment is not None else (0, 1)
        return f"{self.source}#segment={index}/{count}"


@dataclass(frozen=True)
class Job:
    """What every task needs: the settings, the job's description (part metadata), where parts go."""

    settings: Settings
    description: dict
    out: str
    storage_options: dict = field(default_factory=dict)

    @property
    def settings_hash(self) -> str:
        return self.description["settings_hash"]


@dataclass
class PartReport:
    """What one task did: its part file, the units it covers, and its counts."""

    name: str
    units: list[str]
    rows: int
    faces: int
    errors: list[str]
    files: float = 0.0             # inputs done (a video segment counts for its share of its file)


def chunk_units(inputs: list[Input], chunk: int) -> list[list[Unit]]:
    """Images in runs of ``chunk`` (their faces classified in one batch), every other input alone
    (a video is one task; ``--segment`` splits it later). The runs follow the sorted input list,
    so the same inputs give the same chunks, and so the same part names, in every run."""
    if chunk < 1:
        raise EmolensError(f"--chunk must be at least 1, not {chunk}")
    chunks, images = [], []
    for item in inputs:
        if item.kind == IMAGE:
            images.append(Unit(item.source, item.kind))
            if len(images) == chunk:
                chunks.append(images)
                images = []
        else:
            if images:
                chunks.append(images)
                images = []
            chunks.append([Unit(item.source, item.kind)])
    if images:
        chunks.append(images)
    return chunks


def part_name(units: list[Unit], settings_hash: str) -> str:
    digest = hashlib.sha256(json.dumps([settings_hash, [u.key for u in units]]).encode()).hexdigest()
    return f"part-{digest[:20]}.parquet"


#: This process's recogniser, by settings hash (a worker builds it once, for its first task).
_RECOGNIZER: dict[str, object] = {}


def recognizer_for(job: Job):
    rec = _RECOGNIZER.get(job.settings_hash)
    if rec is None:
        from ..api import Recognizer

        _RECOGNIZER.clear()
        rec = _RECOGNIZER[job.settings_hash] = Recognizer(threads=1, **job.settings.recognizer_options())
    return rec


def plan_video(unit: Unit, job: Job) -> list[Unit]:
    """The segments of a video (``--segment`` seconds each, split at keyframes), as units; the
    video whole when it cannot be opened (its task then writes the row that says why)."""
    from ..vision.errors import VideoError
    from ..vision.video import plan_segments

    try:
        with _video_file(unit.source, job) as file:
            segments = plan_segments(unit.source, job.settings.segment, file=file)
    except (VideoError, OSError):
        return [unit]
    if len(segments) == 1:
        return [unit]
    return [Unit(unit.source, unit.kind, s) for s in segments]


def run_part(units: list[Unit], job: Job) -> PartReport:
    """Recognise ``units`` and write their rows as one part file in ``job.out``."""
    import pyarrow.parquet as pq

    from ..files import atomic_path

    rec = recognizer_for(job)
    images = [u for u in units if u.kind == IMAGE]
    rows = image_rows(rec, images, job) if images else []
    files = float(len(units))
    for unit in units:
        if unit.kind == VIDEO:
            rows += video_rows(rec, unit, job)
            files -= 1 - 1 / unit.segment.count if unit.segment is not None else 0
        elif unit.kind != IMAGE:
            rows.append(error_row(unit.source, f"{unit.source}: not an image or video file (by its name's ending)"))
    name = part_name(units, job.settings_hash)
    keys = [u.key for u in units]
    table = rows_table(rows, row_schema(rec.classes, job.description, keys))
    with atomic_path(Path(job.out) / name) as tmp:
        pq.write_table(table, tmp)
    errors = [r["error"] for r in rows if r.get("error")]
    faces = sum(1 for r in rows if r.get("face") is not None)
    return PartReport(name, keys, len(rows), faces, errors, files)


def image_rows(rec, units: list[Unit], job: Job) -> list[dict]:
    """The rows of a chunk of images, as ``emolens predict`` makes them: the images that can be
    read are recognised in one batch; each one that cannot gets a row saying why."""
    from ..vision.images import decode_image, read_image

    rows, kept, pictures = {}, [], []
    for unit in units:
        try:
            pictures.append(decode_image(read_bytes(unit.source, job.storage_options), unit.source)
                            if is_url(unit.source) else read_image(unit.source))
            kept.append(unit)
        except EmolensError as e:
            rows[unit.source] = [error_row(unit.source, str(e))]
    for unit, frame in zip(kept, rec.predict_batch(pictures) if pictures else []):
        frame.source, frame.image = unit.source, None
        rows[unit.source] = frame_rows(frame)
    return [row for unit in units for row in rows[unit.source]]


def video_rows(rec, unit: Unit, job: Job) -> list[dict]:
    """The rows of a video (or one segment of it), as ``emolens video`` makes them: one per face
    per processed frame, tracked (tracks and smoothing start afresh in each segment)."""
    from ..vision.video import VideoReader

    settings, segment = job.settings, unit.segment
    index = segment.index if segment is not None else 0
    try:
        with _video_file(unit.source, job) as file:
            reader = VideoReader(unit.source, file=file)
            try:
                frames = rec.stream(reader.frames(settings.every, segment), detect_every=settings.detect_every,
                                    half_life=settings.smooth, patience=settings.patience, source=unit.source)
                return [row for frame in frames for row in frame_rows(frame, index, empty_row=False)]
            finally:
                reader.close()
    except EmolensError as e:
        return [error_row(unit.source, str(e), index)]
    except OSError as e:
        return [error_row(unit.source, f"{unit.source}: cannot be read ({e})", index)]


@contextmanager
def _video_file(source: str, job: Job):
    """None for a local path (PyAV opens it itself), else the URL's fsspec file object, closed afterwards."""
    from ..vision.errors import VideoError

    if not is_url(source):
        yield None
        return
    try:
        file = open_file(source, job.storage_options)
    except FileNotFoundError:
        raise VideoError(f"{source}: no such file") from None
    try:
        yield file
    finally:
        file.close()
