"""Scoring a model on a data set whose classes differ from the model's (cross-data-set evaluation).

Researchers judge a FER model on sets it was not trained on: CK+ (no neutral, has contempt),
JAFFE (no contempt), RAF-DB, AffectNet. :func:`score` takes the model's probabilities and the
true class names and reports, saying which is which:

- ``accuracy``: the argmax over the evaluation classes (by default all of the model's classes:
  what a user of the model gets);
- ``accuracy_restricted``: the argmax restricted to the classes the data has (the model cannot
  lose a face to a class the data lacks, such as neutral on CK+);
- rows whose class the model lacks (or is outside ``--classes``): left out, counted per class;
- macro-F1 over the classes the data has, per-class recall, the confusion matrix;
- a 95% confidence interval of both accuracies, resampled by subject when subjects are known
  (near-duplicate frames of one person move together), otherwise by image.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..classes import canonical_name, resolve_class_set
from ..errors import DataError
from .metrics import Metrics, compute_metrics

BOOTSTRAP_SAMPLES = 1000


def read_subjects(root: str | Path) -> dict[str, str] | None:
    """``ROOT/subjects.csv`` (columns ``path,subject``; paths relative to ROOT) as {path: subject}, or None."""
    path = Path(root) / "subjects.csv"
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "subject"} <= {h.strip() for h in reader.fieldnames}:
            raise DataError(f"{path}: expected columns path,subject; header is {','.join(reader.fieldnames or [])}")
        out = {}
        for row_no, row in enumerate(reader, start=1):
            p, s = (row.get("path") or "").strip(), (row.get("subject") or "").strip()
            if not p or not s:
                raise DataError(f"{path}: row {row_no} (line {reader.line_num}): empty path or subject")
            out[p.replace("\\", "/")] = s
    return out


def subject_groups(roots, rel_paths: list[str]) -> np.ndarray | None:
    """One group id per row from ``subjects.csv`` beside the class folders of the one data root
    (rows it does not list get a group of their own); None without such a file or with several roots."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    subjects = read_subjects(roots[0]) if len(roots) == 1 else None
    if subjects is None:
        return None
    return np.array([subjects.get(p, f"image:{p}") for p in rel_paths])


def _bootstrap(correct: np.ndarray, groups: np.ndarray | None, samples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of ``correct``, resampling groups (or rows) with replacement."""
    if len(correct) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(correct), size=(samples, len(correct)))
        means = correct[idx].mean(axis=1)
    else:
        _, inverse = np.unique(groups, return_inverse=True)
        n_groups = inverse.max() + 1
        hits = np.bincount(inverse, weights=correct, minlength=n_groups)
        sizes = np.bincount(inverse, minlength=n_groups)
        pick = rng.integers(0, n_groups, size=(samples, n_groups))
        means = hits[pick].sum(axis=1) / np.maximum(sizes[pick].sum(axis=1), 1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def score(probs: np.ndarray, true_names, model_classes, classes=None, groups: np.ndarray | None = None,
          found: np.ndarray | None = None, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Metrics:
    """Metrics of probabilities ``probs`` (N, len(model_classes)) against class names ``true_names``.

    ``classes``: the evaluation class set (a name such as ``fer2013``, a comma list or a list);
    rows outside it are left out and the argmax is taken over it (default: the model's classes).
    ``found``: False where no face was found (the row counts as wrong, its prediction "no face").
    ``groups``: subject per row, for the confidence interval (None: resample images).
    """
    model_classes = list(model_classes)
    true_names = [canonical_name(t) for t in true_names]
    probs = np.asarray(probs, dtype=np.float64).reshape(len(true_names), len(model_classes))
    found = np.ones(len(true_names), bool) if found is None else np.asarray(found, bool)
    wanted = list(resolve_class_set(classes)) if classes else model_classes
    absent = [c for c in wanted if c not in model_classes]
    if absent and classes:
        raise DataError(f"--classes {classes}: the model does not predict {', '.join(absent)} "
                        f"(it predicts {', '.join(model_classes)})")
    keep = np.array([t in wanted for t in true_names], bool)
    left_out: dict[str, int] = {}
    for t in np.array(true_names, dtype=object)[~keep]:
        left_out[t] = left_out.get(t, 0) + 1
    if not keep.any():
        raise DataError(f"no row of the data has a class in {', '.join(wanted)} (its classes: "
                        f"{', '.join(sorted(set(true_names)))})")
    true = [true_names[i] for i in np.flatnonzero(keep)]
    p, ok = probs[keep], found[keep]
    g = None if groups is None else np.asarray(groups)[keep]
    y = np.array([wanted.index(t) for t in true])
    present = sorted(set(true), key=wanted.index)

    def argmax_over(names: list[str]) -> np.ndarray:
        cols = [model_classes.index(c) for c in names]
        pred = np.array([wanted.index(names[k]) for k in p[:, cols].argmax(axis=1)]) if len(p) else np.zeros(0, int)
        return np.where(ok, pred, -1)

    pred_full, pred_restricted = argmax_over(wanted), argmax_over(present)
    metrics = compute_metrics(y, pred_full, wanted, average_over=[wanted.index(c) for c in present])
    correct_full, correct_restricted = (pred_full == y).astype(float), (pred_restricted == y).astype(float)
    ci_full = _bootstrap(correct_full, g, samples, seed)
    ci_restricted = _bootstrap(correct_restricted, g, samples, seed)
    restricted = compute_metrics(y, pred_restricted, wanted, average_over=[wanted.index(c) for c in present])
    metrics.extra = {
        "argmax_over": wanted,
        "accuracy_restricted": float(correct_restricted.mean()),
        "restricted_to": present,
        "macro_f1_restricted": restricted.macro_f1,
        "recall": {c: metrics.per_class[c]["recall"] for c in present},
        "recall_restricted": {c: restricted.per_class[c]["recall"] for c in present},
        "left_out": left_out,
        "n_left_out": int(sum(left_out.values())),
        "ci95": {"accuracy": list(ci_full), "accuracy_restricted": list(ci_restricted)},
        "resampled_by": "image" if g is None else f"subject ({len(np.unique(g))} groups)",
        "predicted": {c: int((pred_full == k).sum()) for k, c in enumerate(wanted)},
    }
    return metrics


def summary(metrics: Metrics) -> str:
    """The cross-data-set lines that follow the classification report."""
    x = metrics.extra
    if "accuracy_restricted" not in x:
        return ""
    lo, hi = x["ci95"]["accuracy"]
    rlo, rhi = x["ci95"]["accuracy_restricted"]
    lines = [
        f"accuracy, argmax over {len(x['argmax_over'])} classes ({', '.join(x['argmax_over'])}): "
        f"{metrics.accuracy:.4f}  95% CI [{lo:.4f}, {hi:.4f}]",
        f"accuracy, argmax restricted to the data's {len(x['restricted_to'])} classes ({', '.join(x['restricted_to'])}): "
        f"{x['accuracy_restricted']:.4f}  95% CI [{rlo:.4f}, {rhi:.4f}]",
        f"macro-F1 over the data's classes: {metrics.macro_f1:.4f} (restricted argmax: {x['macro_f1_restricted']:.4f})",
        "recall: " + ", ".join(f"{c} {r:.3f}" for c, r in x["recall"].items()),
        "predicted: " + ", ".join(f"{c} {n}" for c, n in x["predicted"].items()),
        f"confidence intervals: 95%, {BOOTSTRAP_SAMPLES} bootstrap samples resampled by {x['resampled_by']}",
    ]
    if x["left_out"]:
        lines.append("left out (class not evaluated): " + ", ".join(f"{c} {n}" for c, n in x["left_out"].items()))
    return "\n".join(lines)
