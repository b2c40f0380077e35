"""``emolens evaluate``: a model's metrics on one split of a data set."""

from __future__ import annotations

from pathlib import Path

from ..data import FaceDataset, load_dataset
from ..errors import ModelError
from ..evaluation.metrics import Metrics, compute_metrics
from ..models.weights import tta_mode


def match_classes(ds: FaceDataset, model_classes: list[str], model_name: str) -> FaceDataset:
    """Put the data's labels in the model's class order; refuse when the class sets differ."""
    if list(ds.class_names) == list(model_classes):
        return ds
    if set(ds.class_names) == set(model_classes):
        return ds.with_classes(tuple(model_classes))
    raise ModelError(
        f"model {model_name!r} predicts {len(model_classes)} classes ({', '.join(model_classes)}) but the data "
        f"has {len(ds.class_names)} ({', '.join(ds.class_names)}); use a model trained on these classes, "
        "or pick a common subset with --classes")


def evaluate(model: str = "default", data=(), ferplus=None, split: str | None = None, classes=None,
             tta: bool | str | None = None, backend: str = "onnx", detect: bool = False, detector: str | None = None,
             out_dir: str | Path | None = None) -> Metrics:
    from ..runtime import load_classifier

    clf = load_classifier(model, backend=backend)
    if detect:
        from ..vision.evaluate import evaluate_detect

        metrics = evaluate_detect(clf, data, detector=detector, split=split, tta=clf.spec.tta if tta is None else tta)
    else:
        ds = load_dataset(data, ferplus=ferplus, classes=classes)
        part = ds.split(split, "test")
        part = match_classes(part, clf.classes, clf.name)
        probs = clf.predict_proba(part.images, tta=tta)
        metrics = compute_metrics(part.labels, probs.argmax(1), clf.classes)
        metrics.extra = {"model": clf.name, "split": part.split_names[0] if len(part) else split,
                         "tta": tta_mode(clf.spec.tta if tta is None else tta)}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.txt").write_text(metrics.report)
        metrics.plot_confusion(out / "confusion_matrix.png")
        metrics.write_json(out / "metrics.json")
    return metrics
