"""A classifier on a data set -> :class:`Metrics`: the one place emolens scores a model.

``emolens evaluate``, the training report, the model cards, the experiment runner, ensemble
weight tuning and ``--detect`` all come here, always through the runtime classifier
(:mod:`emolens.runtime`; a torch module in memory gets the thin
:class:`~emolens.runtime.classifier.ModuleClassifier` adapter), so test-time augmentation,
calibration and batching exist once. Scores are :func:`emolens.evaluation.crossdata.score`'s:
the data's classes may differ from the model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import FaceDataset, load_dataset
from ..files import atomic_write_text
from ..models.weights import tta_mode
from .crossdata import score, subject_groups
from .metrics import Metrics


def score_dataset(probs: np.ndarray, part: FaceDataset, model_classes, classes=None,
                  groups: np.ndarray | None = None) -> Metrics:
    """Metrics of probabilities ``probs`` (rows of ``part``, columns ``model_classes``) against
    ``part``'s labels; ``extra`` names the split."""
    metrics = score(probs, [part.class_names[k] for k in part.labels], model_classes, classes=classes, groups=groups)
    metrics.extra["split"] = part.split_names[0] if len(part) and part.split_names else None
    return metrics


def evaluate_classifier(clf, part: FaceDataset, tta: bool | str | None = None, classes=None,
                        groups: np.ndarray | None = None) -> Metrics:
    """A classifier's metrics on the face crops of ``part`` (one split); ``tta`` None: the spec's default."""
    mode = tta_mode(clf.spec.tta if tta is None else tta)
    metrics = score_dataset(clf.predict_proba(part.images, tta=mode), part, clf.classes, classes=classes, groups=groups)
    metrics.extra.update({"model": clf.name, "tta": mode, "calibrated": not clf.raw and bool(clf.spec.calibration),
                          "precision": clf.precision})
    return metrics


def evaluate_module(model, spec, part: FaceDataset, tta: bool | str = False) -> Metrics:
    """A torch network in memory (training, cards, experiments), scored raw: its own softmax."""
    from ..runtime.classifier import ModuleClassifier

    return evaluate_classifier(ModuleClassifier(model, spec, raw=True), part, tta=tta)


def evaluate(model: str | Path = "default", data=(), ferplus=None, split: str | None = None, classes=None,
             tta: bool | str | None = None, backend: str = "onnx", detect: bool = False, detector: str | None = None,
             out_dir: str | Path | None = None, raw: bool = False, class_map=None, precision: str = "float") -> Metrics:
    """A model's metrics on one split of a data set (or the whole of a folder without splits).

    The data's classes may differ from the model's (cross-data-set evaluation): see
    :func:`emolens.evaluation.crossdata.score`. ``detect``: the whole pipeline (detect, align,
    classify) on uncropped photos (:func:`emolens.evaluation.detect.evaluate_detect`). ``raw``:
    without the model's calibration and operating point. ``class_map``: the data's numbered labels
    as classes (``1=surprise,...``, a YAML file or a preset such as ``rafdb``). ``out_dir``: also writes report.txt,
    confusion_matrix.png and metrics.json there.
    """
    from ..runtime import load_classifier

    clf = load_classifier(model, backend=backend, raw=raw, precision=precision)
    if detect:
        from .detect import evaluate_detect

        metrics = evaluate_detect(clf, data, detector=detector, split=split, tta=tta, classes=classes,
                                   class_map=class_map)
    else:
        ds = load_dataset(data, ferplus=ferplus, class_map=class_map)
        part = ds if split is None and len(ds.split_names) == 1 else ds.split(split, "test")
        groups = None if part.paths is None else subject_groups(data, [str(p) for p in part.paths])
        metrics = evaluate_classifier(clf, part, tta=tta, classes=classes, groups=groups)
    if out_dir:
        out = Path(out_dir)
        atomic_write_text(out / "report.txt", metrics.report)
        metrics.plot_confusion(out / "confusion_matrix.png")
        metrics.write_json(out / "metrics.json")
    return metrics
