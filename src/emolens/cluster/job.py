"""``emolens.batch(...)``: a corpus of images and videos -> a Parquet dataset, on Dask; the Python
call behind ``emolens batch``. See docs/cluster.md.

    >>> import emolens
    >>> if __name__ == "__main__":            # a local cluster spawns processes that import this file
    ...     summary = emolens.batch(["photos/", "clips/*.mp4"], "faces.parquet", workers=4)
    ...     print(summary.rows, summary.rows_per_s)
    >>> import pandas as pd; df = pd.read_parquet("faces.parquet")
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import EmolensError, names_missing_extras
from .parts import Job
from .schema import Settings
from .sources import VIDEO

#: The progress bar: files done (a video split in segments counts by its share), rate, ETA, faces.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} files [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

#: Images per task by default: their faces are classified in one batch (as ``emolens predict`` does).
#: Fewer tasks cost the scheduler less: on 2 workers 32 ran 15% more images a second than 16.
DEFAULT_CHUNK = 32


@dataclass
class BatchSummary:
    """What a batch run did. ``inputs``: files named by the sources; ``skipped``: those an earlier
    run had already done; ``rows``/``faces``/``errors``: of the parts written by this run;
    ``failed``: tasks that raised (their inputs are not done: a rerun tries them again)."""

    out: Path
    inputs: int
    skipped: int
    rows: int = 0
    faces: int = 0
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    parts: int = 0
    seconds: float = 0.0
    dashboard: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        done = self.inputs - self.skipped
        text = (f"{self.inputs:,} input(s)" + (f" ({self.skipped:,} already done)" if self.skipped else "")
                + f": {done:,} recognised, {self.rows:,} row(s), {self.faces:,} face(s), {len(self.errors):,} "
                f"error(s), {self.seconds:.1f} s, {self.rows_per_s:.1f} rows/s; {self.parts:,} part(s) in {self.out}")
        if self.failed:
            text += f"; {len(self.failed):,} task(s) failed (run again to retry them)"
        return text


def check_settings(settings: Settings, chunk: int) -> None:
    problems = [(settings.every < 1, f"--every must be at least 1, not {settings.every}"),
                (settings.detect_every is not None and settings.detect_every < 1,
                 f"--detect-every must be at least 1, not {settings.detect_every}"),
                (settings.smooth < 0, f"--smooth must be 0 seconds or more, not {settings.smooth}"),
                (settings.patience is not None and settings.patience < 0,
                 f"--track-patience must be 0 seconds or more, not {settings.patience}"),
                (settings.segment < 0, f"--segment must be 0 seconds or more, not {settings.segment}"),
                (chunk < 1, f"--chunk must be at least 1, not {chunk}")]
    for bad, message in problems:
        if bad:
            raise EmolensError(message)


def _video_done(keys: set[str]) -> bool:
    """Whether these ``SOURCE#segment=i/n`` keys of one video cover all its n segments."""
    return bool(keys) and len(keys) == int(next(iter(keys)).rsplit("/", 1)[1])


@names_missing_extras
def batch(sources: Iterable[str] | str, out: str | Path, *, list_file: str | Path | None = None,
          storage_options: dict | None = None, address: str | None = None, workers: int | None = None,
          client=None, chunk: int = DEFAULT_CHUNK, model: str = "default", detector: str | None = None,
          backend: str = "onnx", precision: str = "auto", margin: float | None = None, min_score: float | None = None,
          max_side: int | None = None, tta: bool | str | None = False, min_confidence: float | None = None,
          raw: bool = False, trust_unhashed: bool = False, every: int = 1, detect_every: int | None = None,
          smooth: float = 0.5, patience: float | None = None, segment: float = 0.0, overwrite: bool = False,
          progress: bool = True) -> BatchSummary:
    """Recognise every image and video that ``sources`` name (files, folders, globs, fsspec URLs;
    ``list_file``: one a line) on a Dask cluster, one row per face, into the Parquet dataset
    ``out`` (a folder of ``part-<hash>.parquet`` files); returns a :class:`BatchSummary`.

    ``address``: a Dask scheduler (default ``DASK_SCHEDULER_ADDRESS``, else a local cluster of
    ``workers`` processes, one per core by default); ``client``: an existing Dask client to use
    instead. ``chunk``: images per task. The recogniser's options are :class:`emolens.Recognizer`'s;
    ``every``, ``detect_every``, ``smooth`` (half-life, seconds), ``patience``: as ``emolens video``;
    ``segment``: split videos at keyframes into tasks of this many seconds (tracks restart in each).

    A rerun on the same ``out`` skips the inputs already there; one with other settings is refused
    unless ``overwrite`` (which deletes the old parts first)."""
    from ..api import Recognizer
    from .output import prepare
    from .parts import chunk_units
    from .schema import describe
    from .sources import expand_sources

    started = time.perf_counter()
    settings = Settings(model=model, detector=detector, backend=backend, precision=precision, margin=margin, min_score=min_score,
                        max_side=max_side, tta=tta, min_confidence=min_confidence, raw=raw,
                        trust_unhashed=trust_unhashed, every=every, detect_every=detect_every, smooth=smooth,
                        patience=patience, segment=float(segment or 0))
    check_settings(settings, chunk)
    sources = [sources] if isinstance(sources, (str, Path)) else [str(s) for s in sources]
    inputs = expand_sources(sources, list_file, storage_options)
    if not inputs:
        named = ", ".join(sources + ([f"--list {list_file}"] if list_file else [])) or "no source"
        raise EmolensError(f"no image or video files in {named}")
    description = describe(settings, Recognizer(threads=1, **settings.recognizer_options()))
    done = prepare(out, description, overwrite)
    job = Job(settings, description, str(out), dict(storage_options or {}))

    segments_done: dict[str, set[str]] = {}
    for key in done:
        if "#segment=" in key:
            segments_done.setdefault(key.split("#segment=")[0], set()).add(key)
    chunks, plans, skipped = [], [], 0
    for units in chunk_units(inputs, chunk):
        if units[0].kind == VIDEO:
            if _video_done(segments_done.get(units[0].source, set())):
                skipped += 1
            elif settings.segment > 0:
                plans.append(units[0])
            else:
                chunks.append(units)
            continue
        todo = [u for u in units if u.key not in done]
        skipped += len(units) - len(todo)
        if todo:
            chunks.append(todo)
    summary = BatchSummary(Path(out), len(inputs), skipped)
    if chunks or plans:
        _run(summary, chunks, plans, job, done, address, workers, client, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _run(summary: BatchSummary, chunks, plans, job: Job, done: set[str], address, workers, client,
         progress: bool) -> None:
    """Run the tasks on Dask with one progress bar (files, faces, rate, ETA), adding up the parts."""
    from tqdm import tqdm

    from .dask_runner import Failure, Planned, connect, dashboard, run_tasks

    with connect(address, workers, client) as dask_client:
        summary.dashboard = dashboard(dask_client)
        if summary.dashboard and progress:
            print(f"Dask dashboard: {summary.dashboard}", file=sys.stderr)
        bar = tqdm(total=summary.inputs - summary.skipped, unit="file", desc="batch", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True, bar_format=BAR_FORMAT)

        def advance(files: float) -> None:           # a video segment counts for its share of its file
            bar.update(min(files, bar.total - bar.n))

        try:
            for result in run_tasks(dask_client, chunks, plans, job, done):
                if isinstance(result, Failure):
                    summary.failed.append(f"{', '.join(result.units)}: {result.error}")
                    if progress:
                        tqdm.write(f"emolens: task failed: {summary.failed[-1]}", file=sys.stderr)
                    continue
                if isinstance(result, Planned):
                    advance(result.done)
                    continue
                summary.parts += 1
                summary.rows += result.rows
                summary.faces += result.faces
                summary.errors += result.errors
                advance(result.files)
                bar.set_postfix(faces=f"{summary.faces:,}", errors=len(summary.errors), refresh=False)
        finally:
            bar.close()
