"""The per-frame, per-face CSV of a video, written row by row, and an emotion timeline plot per track."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from .results import FrameResult


class TimelineWriter:
    """Write one CSV row per face per processed frame as frames arrive, and keep each track's
    (time, probabilities) series (a few numbers per face, not the frames) for the plots."""

    def __init__(self, path: str | Path | None, classes: list[str]):
        self.classes = list(classes)
        self.columns = ["frame_index", "timestamp", "track_id", "x1", "y1", "x2", "y2", "score", "label",
                        "confidence", *[f"p_{c}" for c in self.classes], "raw_label"]
        self.series: dict[int, tuple[list[float], list[np.ndarray]]] = {}
        self.path = Path(path) if path else None
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.columns)

    def add(self, frame: FrameResult) -> None:
        for face in frame.faces:
            probs = np.array([face.probabilities.get(c, 0.0) for c in self.classes], np.float32)
            if face.track_id is not None:
                times, values = self.series.setdefault(face.track_id, ([], []))
                times.append(frame.timestamp or 0.0)
                values.append(probs)
            if self._file is not None:
                raw = face.raw_probabilities
                raw_label = max(raw, key=raw.get) if raw else face.label
                self._csv.writerow([frame.frame_index, f"{frame.timestamp or 0.0:.3f}", face.track_id,
                                    *(f"{v:.1f}" for v in face.box), f"{face.score:.4f}", face.label,
                                    f"{face.confidence:.4f}", *(f"{p:.4f}" for p in probs), raw_label])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def plot_tracks(self, folder: str | Path, stem: str, min_points: int = 3) -> list[Path]:
        """One PNG per track seen in at least ``min_points`` processed frames: ``STEM_track<ID>.png``.
        None without matplotlib (the light install): the CSV holds the same rows; a line says so."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("emolens: timeline plots skipped: they need matplotlib: pip install 'emolens[plot]'", file=sys.stderr)
            return []
        out = []
        for track_id, (times, values) in sorted(self.series.items()):
            if len(times) < min_points:
                continue
            path = Path(folder) / f"{stem}_track{track_id}.png"
            plot_timeline(np.array(times), np.stack(values), self.classes, path, f"track {track_id}")
            out.append(path)
        return out


def plot_timeline(times: np.ndarray, probs: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """Stacked probabilities of each class over time, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .draw import colour

    colours = [tuple(c / 255 for c in reversed(colour(name))) for name in classes]   # BGR -> RGB in [0, 1]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.stackplot(times, probs.T, labels=classes, colors=colours, alpha=0.9)
    ax.set_xlim(times[0], times[-1] if times[-1] > times[0] else times[0] + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    mean = probs.mean(axis=0)
    top = int(mean.argmax())
    ax.set_title(f"{title}: {len(times)} frames, mostly {classes[top]} ({mean[top]:.0%} on average)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
