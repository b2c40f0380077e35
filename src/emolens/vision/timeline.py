"""The per-frame, per-face CSV of a video, written row by row, an emotion timeline plot per track,
and one overview plot of every track. Each file appears under its final name only when complete."""

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
        from .video import atomic_path

        self.classes = list(classes)
        self.columns = ["frame_index", "timestamp", "track_id", "x1", "y1", "x2", "y2", "score", "label",
                        "confidence", *[f"p_{c}" for c in self.classes], "raw_label"]
        self.series: dict[int, tuple[list[float], list[np.ndarray]]] = {}
        self.path = Path(path) if path else None
        self._file = None
        if self.path is not None:
            self._atomic = atomic_path(self.path)
            self._file = open(self._atomic.__enter__(), "w", newline="")
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
        """Finish the CSV: it gets its final name now."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the unfinished CSV (an earlier file under the final name is left as it was)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def plot_tracks(self, folder: str | Path, stem: str, min_points: int = 3) -> list[Path]:
        """One PNG per track seen in at least ``min_points`` processed frames: ``STEM_track<ID>.png``.
        None without matplotlib (the light install): the CSV holds the same rows; a line says so."""
        if not _can_plot():
            return []
        out = []
        for track_id, (times, values) in sorted(self.series.items()):
            if len(times) < min_points:
                continue
            path = Path(folder) / f"{stem}_track{track_id}.png"
            plot_timeline(np.array(times), np.stack(values), self.classes, path, f"track {track_id}")
            out.append(path)
        return out

    def plot_overview(self, path: str | Path, min_points: int = 3) -> Path | None:
        """One PNG with a row per track (seen in at least ``min_points`` frames): the share of each
        emotion over the whole video, on one time axis. None when no track is long enough."""
        tracks = [(tid, np.array(t), np.stack(v)) for tid, (t, v) in sorted(self.series.items())
                  if len(t) >= min_points]
        if not tracks or not _can_plot(quiet=True):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        start = min(t[0] for _, t, _ in tracks)
        end = max(t[-1] for _, t, _ in tracks)
        fig, axes = plt.subplots(len(tracks), 1, figsize=(10, 1.2 + 1.3 * len(tracks)), sharex=True, squeeze=False)
        colours = _rgb_colours(self.classes)
        for ax, (tid, times, probs) in zip(axes[:, 0], tracks):
            ax.stackplot(times, probs.T, colors=colours, alpha=0.9)
            ax.set_xlim(start, end if end > start else start + 1)
            ax.set_ylim(0, 1)
            ax.set_yticks([])
            mean = probs.mean(axis=0)
            ax.set_ylabel(f"#{tid}", rotation=0, ha="right", va="center")
            ax.text(1.005, 0.5, f"{self.classes[int(mean.argmax())]} {mean.max():.0%}", transform=ax.transAxes,
                    va="center", fontsize=8)
        axes[-1, 0].set_xlabel("time (s)")
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
        top = 1 - 0.75 / fig.get_figheight()                     # room for the title and the legend
        fig.suptitle(f"emotion share per track ({len(tracks)} tracks)", y=0.995, fontsize=10)
        fig.legend(handles, self.classes, loc="upper center", bbox_to_anchor=(0.5, top + 0.35 / fig.get_figheight()),
                   ncol=len(self.classes), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.93, top))
        return _save(fig, path)


def plot_timeline(times: np.ndarray, probs: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """Stacked probabilities of each class over time, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = _rgb_colours(classes)
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
    _save(fig, path)


def _rgb_colours(classes: list[str]) -> list[tuple[float, float, float]]:
    """Each class's drawing colour (vision/draw, BGR 0-255) as matplotlib RGB in [0, 1]."""
    from .draw import colour

    return [tuple(c / 255 for c in reversed(colour(name))) for name in classes]


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    from .video import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def _can_plot(quiet: bool = False) -> bool:
    """Whether matplotlib is installed (the light install has none); says so once when not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if not quiet:
            from ..errors import install_hint

            print(f"emolens: timeline plots skipped: they need matplotlib: {install_hint('plot')}", file=sys.stderr)
        return False
    return True
