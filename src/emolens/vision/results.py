"""Typed recognition results: one :class:`FaceResult` per face, one :class:`FrameResult` per image."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: The label of a face whose top probability is below the caller's ``min_confidence``.
UNCERTAIN = "uncertain"


def top_label(probabilities: dict[str, float], min_confidence: float | None = None) -> tuple[str, float]:
    """The most probable class and its probability; the label is :data:`UNCERTAIN` when that
    probability is below ``min_confidence`` (None or 0: never)."""
    label = max(probabilities, key=probabilities.get)
    confidence = float(probabilities[label])
    if min_confidence and confidence < min_confidence:
        return UNCERTAIN, confidence
    return label, confidence


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]          # x1, y1, x2, y2 in image pixels
    score: float                                    # detection confidence
    label: str                                      # top class, or "uncertain" below the caller's min_confidence
    confidence: float                               # probability of the top class (also when uncertain)
    probabilities: dict[str, float]                 # class -> probability, in the model's class order
    landmarks: list[tuple[float, float]] | None = None  # 5 points: eyes, nose, mouth corners (if the detector gives them)
    track_id: int | None = None                     # stable id across frames (video, webcam, stream)
    raw_probabilities: dict[str, float] | None = None  # this frame's own output, when smoothed in video

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as (name, probability), best first."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = [round(v, 1) for v in self.box]
        d["score"] = round(self.score, 5)
        d["confidence"] = round(self.confidence, 5)
        d["probabilities"] = {k: round(v, 5) for k, v in self.probabilities.items()}
        if self.landmarks is not None:
            d["landmarks"] = [[round(x, 1), round(y, 1)] for x, y in self.landmarks]
        if self.raw_probabilities is None:
            del d["raw_probabilities"]
        else:
            d["raw_probabilities"] = {k: round(v, 5) for k, v in self.raw_probabilities.items()}
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


@dataclass
class FrameResult:
    #: In reading order (rows top to bottom, each left to right) for a still image, numbered from 1 in
    #: every output: ``face`` in the JSON and CSV, "face N" in the CLI table, "#N" on the web page.
    faces: list[FaceResult] = field(default_factory=list)
    width: int = 0
    height: int = 0
    source: str = ""                                # file name, "webcam:0", "upload"...
    frame_index: int | None = None                  # in a video
    timestamp: float | None = None                  # seconds into a video
    timings_ms: dict[str, float] = field(default_factory=dict)  # detect / classify / total
    #: The RGB picture of an in-memory input (array, bytes, PIL image), which plot() and save() draw on;
    #: None for a file (read again from ``source``). Not part of the JSON, CSV or table.
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.faces)

    def to_dict(self) -> dict:
        return {
            "source": self.source, "width": self.width, "height": self.height, "frame_index": self.frame_index,
            "timestamp": self.timestamp, "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "faces": [{"face": i, **f.to_dict()} for i, f in enumerate(self.faces, start=1)],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def plot(self, image=None, *, copy: bool = True, top_k: int = 3):
        """The image with a box, label (and track id) and top probabilities drawn per face, as a
        BGR uint8 array (OpenCV's order, ready for ``cv2.imshow``/``imwrite``).

        ``image``: the picture these results are of, BGR (a video or webcam frame); default: the
        in-memory picture the results were made from, else the file named by ``source``.
        ``copy=False`` draws on ``image`` itself."""
        import numpy as np

        from .draw import annotate

        if image is None and self.image is not None:
            import cv2

            image = cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR)     # a new array: the kept picture stays clean
        elif image is None:
            image = _read_source_bgr(self.source)
        elif copy:
            image = np.array(image, copy=True)
        return annotate(image, self, top_k=top_k)

    def save(self, path, image=None) -> Path:
        """Write these results to ``path``: ``.json`` (:meth:`to_json`), ``.csv`` (one row per
        face), or an image suffix (``.png``, ``.jpg``...: :meth:`plot`). Written atomically."""
        return _save(path, lambda: self.to_json(indent=2) + "\n", lambda: [self], lambda: self.plot(image))

    def rows(self) -> list[dict]:
        """One flat row per face (for CSV and pandas); an image with no face has one row too, its face
        columns empty, as it has an entry (with no faces) in the JSON."""
        if not self.faces:
            return [{"source": self.source, "frame_index": self.frame_index, "timestamp": self.timestamp}]
        out = []
        for i, f in enumerate(self.faces):
            row = {"source": self.source, "frame_index": self.frame_index, "timestamp": self.timestamp,
                   "face": i + 1, "track_id": f.track_id, "x1": f.box[0], "y1": f.box[1], "x2": f.box[2],
                   "y2": f.box[3], "score": f.score, "label": f.label, "confidence": f.confidence}
            row.update({f"p_{k}": v for k, v in f.probabilities.items()})
            if f.raw_probabilities is not None:
                row["raw_label"] = max(f.raw_probabilities, key=f.raw_probabilities.get)
            out.append(row)
        return out

    def to_pandas(self):
        import pandas as pd

        rows = self.rows()
        return pd.DataFrame(rows, columns=_columns(rows))


#: Columns of a face row, for an empty table that still has its header.
ROW_COLUMNS = ("source", "frame_index", "timestamp", "face", "track_id", "x1", "y1", "x2", "y2", "score", "label",
               "confidence")


def _columns(rows: list[dict]) -> list[str]:
    cols = list(ROW_COLUMNS)
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


class Results(list):
    """The :class:`FrameResult` of each image of a batch, in input order, with table and JSON exports."""

    @property
    def faces(self) -> list[FaceResult]:
        return [face for frame in self for face in frame.faces]

    def to_dicts(self) -> list[dict]:
        return [frame.to_dict() for frame in self]

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dicts(), **kwargs)

    def rows(self) -> list[dict]:
        return [row for frame in self for row in frame.rows()]

    def to_pandas(self):
        """One row per face of every image; an image with no face has one row, its face columns empty."""
        import pandas as pd

        rows = self.rows()
        return pd.DataFrame(rows, columns=_columns(rows))

    def to_csv(self, path) -> None:
        self.to_pandas().to_csv(path, index=False)

    def plot(self, top_k: int = 3) -> list:
        """Each image (its in-memory picture, else read again from its ``source`` file) with its faces
        drawn (BGR arrays)."""
        return [frame.plot(top_k=top_k) for frame in self]

    def save(self, path) -> Path:
        """Write all results to ``path``: ``.json`` or ``.csv`` (one row per face), atomically."""
        return _save(path, lambda: self.to_json(indent=2) + "\n", lambda: self, None)


def _read_source_bgr(source: str):
    import cv2

    from ..errors import EmolensError
    from .images import read_image

    if not source:
        raise EmolensError("this result has no source file to draw on: give the image, e.g. plot(frame)")
    return cv2.cvtColor(read_image(source), cv2.COLOR_RGB2BGR)


def _save(path, text, frames, picture) -> Path:
    """Write JSON text, a CSV table of ``frames``, or an annotated ``picture`` by ``path``'s suffix."""
    from ..errors import EmolensError
    from .video import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".json":
            tmp.write_text(text())
        elif suffix == ".csv":
            rows = [row for frame in frames() for row in frame.rows()]
            import pandas as pd

            pd.DataFrame(rows, columns=_columns(rows)).to_csv(tmp, index=False)
        elif picture is not None and suffix in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
            import cv2

            ok, data = cv2.imencode(suffix, picture())
            if not ok:
                raise EmolensError(f"{path}: cannot encode the annotated image")
            tmp.write_bytes(data.tobytes())
        else:
            kinds = ".json, .csv" + (", or an image (.png, .jpg...)" if picture is not None else "")
            raise EmolensError(f"{path}: cannot save results as {suffix or 'a file without suffix'}; use {kinds}")
    return path
