"""The settings of a batch job, and the Parquet schema of its rows.

One row per face: ``source``, ``frame_index`` (null for images), ``timestamp`` (seconds; null for
images), ``segment`` (0 for images and for videos read whole), ``track_id`` (null for images),
``face`` (1, 2, ... in the frame; null for an image with no face, which still gets one row),
``x1, y1, x2, y2, score, confidence``, ``label``, ``p_<class>`` in the model's class order, and
``error`` (a file that cannot be read gets one row saying why). The rows are those of
:meth:`emolens.vision.results.FrameResult.rows` (what ``emolens predict --csv`` writes), typed.

Every part file carries the job's description in its metadata (key ``emolens``: the emolens
version, the model's name and sha256, the detector and every option) and the inputs it covers
(key ``emolens.units``), so that a rerun knows what is done without reading a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

#: Metadata keys of a part file.
META_JOB, META_UNITS = b"emolens", b"emolens.units"

FLOAT_COLUMNS = ("x1", "y1", "x2", "y2", "score", "confidence")


@dataclass(frozen=True)
class Settings:
    """Everything that decides a job's rows: the recogniser's options (as ``emolens predict``) and
    the video options (as ``emolens video``), and ``segment`` (seconds; 0: each video whole)."""

    model: str = "default"
    detector: str | None = None
    backend: str = "onnx"
    precision: str = "auto"
    margin: float | None = None
    min_score: float | None = None
    max_side: int | None = None
    tta: bool | str | None = False
    min_confidence: float | None = None
    raw: bool = False
    trust_unhashed: bool = False
    every: int = 1
    detect_every: int | None = None
    smooth: float = 0.5
    patience: float | None = None
    segment: float = 0.0

    def recognizer_options(self) -> dict:
        keys = ("model", "detector", "backend", "precision", "margin", "min_score", "max_side", "tta", "min_confidence", "raw",
                "trust_unhashed")
        return {k: getattr(self, k) for k in keys}


def describe(settings: Settings, recognizer) -> dict:
    """The job as it is written into every part and the folder's manifest: version, model (name,
    sha256, classes), detector, options; ``settings_hash`` identifies the rows it makes."""
    from ..version import __version__
    from ..vision.detection_size import DETECTION_SIZE, detection_size
    from ..vision.streaming import DEFAULT_DETECT_EVERY
    from ..vision.tracking import DEFAULT_PATIENCE

    info = recognizer.info()
    options = asdict(settings)
    options.pop("trust_unhashed")                      # lets a model load; changes no row
    options["detect_every"] = settings.detect_every or DEFAULT_DETECT_EVERY
    options["patience"] = DEFAULT_PATIENCE if settings.patience is None else settings.patience
    options["detection_size"] = {kind: detection_size(kind, settings.max_side) for kind in DETECTION_SIZE}
    identity = {"model": {"name": info["name"], "sha256": info.get("sha256"), "backend": info["backend"],
                          "calibrated": info["calibrated"]},
                "detector": info["detector"], "classes": info["classes"],
                "options": {k: v for k, v in options.items() if k != "model"}}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"emolens_version": __version__, **identity, "model_argument": settings.model, "settings_hash": key}


def differences(old: dict, new: dict) -> list[str]:
    """What two job descriptions disagree on, as ``name: old -> new`` (the version does not count)."""
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            elif k not in ("settings_hash", "emolens_version", "model_argument"):
                yield f"{prefix}{k}", v

    a, b = dict(flat(old)), dict(flat(new))
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def row_schema(classes, job: dict | None = None, units: list[str] | None = None):
    """The pyarrow schema of the rows for a model with these ``classes``; ``job`` and ``units``
    go into its metadata."""
    import pyarrow as pa

    fields = [pa.field("source", pa.string()), pa.field("frame_index", pa.int64()),
              pa.field("timestamp", pa.float64()), pa.field("segment", pa.int32()),
              pa.field("track_id", pa.int64()), pa.field("face", pa.int32()),
              *(pa.field(name, pa.float32()) for name in FLOAT_COLUMNS), pa.field("label", pa.string()),
              *(pa.field(f"p_{c}", pa.float32()) for c in classes), pa.field("error", pa.string())]
    metadata = {}
    if job is not None:
        metadata[META_JOB] = json.dumps(job, sort_keys=True).encode()
    if units is not None:
        metadata[META_UNITS] = json.dumps(units).encode()
    return pa.schema(fields, metadata=metadata or None)


def frame_rows(frame, segment: int = 0, *, empty_row: bool = True) -> list[dict]:
    """The rows of one FrameResult (:meth:`~emolens.vision.results.FrameResult.rows`) with their
    ``segment``; ``empty_row=False`` (a video frame): none for a frame without faces, as
    ``emolens video`` writes none."""
    if not frame.faces and not empty_row:
        return []
    return [{**row, "segment": segment} for row in frame.rows()]


def error_row(source: str, message: str, segment: int = 0) -> dict:
    return {"source": source, "segment": segment, "error": message}


def rows_table(rows: list[dict], schema):
    """The rows as a table of ``schema``, built column by column (a third of the time of
    ``Table.from_pylist``); keys not in the schema are left out, missing ones are null."""
    import pyarrow as pa

    return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)
