"""``emolens evaluate``: a model's metrics on one split of a data set."""

from __future__ import annotations

from pathlib import Path

from ..data import load_dataset
from ..evaluation.metrics import Metrics
from ..models.weights import tta_mode


def evaluate(model: str = "default", data=(), ferplus=None, split: str | None = None, classes=None,
             tta: bool | str | None = None, backend: str = "onnx", detect: bool = False, detector: str | None = None,
             out_dir: str | Path | None = None, raw: bool = False) -> Metrics:
    """A model's metrics on one split of a data set (or the whole of a folder without splits).

    The data's classes may differ from the model's (cross-data-set evaluation): see
    :func:`emolens.evaluation.crossdata.score`. ``raw``: without the model's calibration and
    operating point."""
    from ..evaluation.crossdata import score, subject_groups
    from ..runtime import load_classifier

    clf = load_classifier(model, backend=backend, raw=raw)
    mode = tta_mode(clf.spec.tta if tta is None else tta)
    if detect:
        from ..vision.evaluate import evaluate_detect

        metrics = evaluate_detect(clf, data, detector=detector, split=split, tta=mode, classes=classes)
    else:
        ds = load_dataset(data, ferplus=ferplus)
        part = ds if split is None and len(ds.split_names) == 1 else ds.split(split, "test")
        groups = None if part.paths is None else subject_groups(data, [str(p) for p in part.paths])
        probs = clf.predict_proba(part.images, tta=mode)
        metrics = score(probs, [part.class_names[k] for k in part.labels], clf.classes, classes=classes,
                        groups=groups)
        metrics.extra.update({"model": clf.name, "split": part.split_names[0] if len(part) else split, "tta": mode})
    metrics.extra["calibrated"] = not raw and bool(clf.spec.calibration)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.txt").write_text(metrics.report)
        metrics.plot_confusion(out / "confusion_matrix.png")
        metrics.write_json(out / "metrics.json")
    return metrics
