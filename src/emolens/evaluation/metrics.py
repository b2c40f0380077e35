"""Classification metrics from scikit-learn, as one typed result that writes JSON, a table and PNGs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes, save_figure


@dataclass
class Metrics:
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    class_names: list[str]
    n: int
    report: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            "accuracy": self.accuracy, "macro_f1": self.macro_f1, "weighted_f1": self.weighted_f1,
            "per_class": self.per_class, "confusion_matrix": self.confusion_matrix, "n": self.n,
            "classes": self.class_names,
        }
        d.update(self.extra)
        return d

    def write_json(self, path: str | Path) -> None:
        atomic_write_bytes(Path(path), (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    def normalised_confusion(self) -> np.ndarray:
        cm = np.asarray(self.confusion_matrix, dtype=float)
        return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)

    def plot_confusion(self, path: str | Path, title: str = "") -> None:
        """Counts and row-normalised confusion matrices side by side, as PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import ConfusionMatrixDisplay

        fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
        cm = np.asarray(self.confusion_matrix)
        ConfusionMatrixDisplay(cm, display_labels=self.class_names).plot(
            ax=axes[0], cmap="Blues", colorbar=False, xticks_rotation=45, values_format="d")
        axes[0].set_title("counts")
        ConfusionMatrixDisplay(self.normalised_confusion(), display_labels=self.class_names).plot(
            ax=axes[1], cmap="Blues", colorbar=False, xticks_rotation=45, values_format=".2f")
        axes[1].set_title("normalised by true class (recall)")
        fig.suptitle(title or f"accuracy {self.accuracy:.2%}, macro-F1 {self.macro_f1:.3f}, n={self.n}")
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)


def compute_metrics(y_true, y_pred, class_names, average_over: list[int] | None = None) -> Metrics:
    """Accuracy, precision/recall/F1 per class, macro and weighted, and the confusion matrix.

    ``average_over``: the class indexes the macro / weighted F1 average (default: all classes);
    cross-data-set scores average over the classes the data has."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(len(class_names)))
    rep = classification_report(y_true, y_pred, labels=labels, target_names=list(class_names),
                                output_dict=True, zero_division=0)
    per_class = {c: {"precision": rep[c]["precision"], "recall": rep[c]["recall"], "f1": rep[c]["f1-score"],
                     "support": int(rep[c]["support"])} for c in class_names}
    return Metrics(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=average_over or labels, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(y_true, y_pred, labels=average_over or labels, average="weighted", zero_division=0)),
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        class_names=list(class_names),
        n=int(len(y_true)),
        report=classification_report(y_true, y_pred, labels=labels, target_names=list(class_names),
                                     digits=4, zero_division=0),
    )

