"""After training: metrics on the validation split, confusion matrix and learning curves as PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from ..data import FaceDataset
from ..evaluation.metrics import Metrics
from ..evaluation.evaluate import evaluate_module
from ..files import atomic_write_text, save_figure
from ..models.weights import ModelSpec
from .config import TrainConfig


def write_report(model, spec: ModelSpec, val: FaceDataset, run_dir: Path, cfg: TrainConfig, seconds: float,
                 epochs: int) -> Metrics:
    metrics = evaluate_module(model, spec, val)
    metrics.extra.update({"split": val.split_names[0], "epochs": epochs, "train_seconds": round(seconds, 1)})
    metrics.write_json(run_dir / "metrics.json")
    atomic_write_text(run_dir / "report.txt", metrics.report)
    metrics.plot_confusion(run_dir / "confusion_matrix.png",
                           f"{spec.name} on {val.split_names[0]}: accuracy {metrics.accuracy:.2%}, "
                           f"macro-F1 {metrics.macro_f1:.3f}")
    plot_curves(run_dir / "logs", run_dir / "curves.png")
    return metrics


def log_files(logs: Path) -> list[Path]:
    """The epoch logs of a run in order: parts kept from before each resume, then the current one."""
    parts = sorted(logs.glob("metrics-part*.csv"), key=lambda p: int(p.stem.removeprefix("metrics-part") or 0))
    current = logs / "metrics.csv"
    return parts + ([current] if current.exists() else [])


def plot_curves(logs: Path, out: Path) -> None:
    """Loss and accuracy per epoch (train and validation) from Lightning's CSV logs."""
    files = log_files(logs)
    if not files:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[int, float]] = {}
    for path in files:  # a later file's value for an epoch replaces an earlier one
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                for key, value in row.items():
                    if key not in ("epoch", "step") and value not in ("", None):
                        series.setdefault(key, {})[epoch] = float(value)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "val"):
            data = series.get(f"{split}_{key}")
            if data:
                xs = sorted(data)
                ax.plot([x + 1 for x in xs], [data[x] for x in xs], label=split, marker=".")
        ax.set_xlabel("epoch")
        ax.set_title("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
