"""Class balancing for a training set: over-sampling, SMOTE, ADASYN (imbalanced-learn), class weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .dataset import FaceDataset

METHODS = ("none", "oversample", "smote", "adasyn", "class_weights")


@dataclass
class BalanceResult:
    dataset: FaceDataset
    method: str
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    class_weights: np.ndarray | None = None  # per class, for the loss; None = unweighted

    def describe(self) -> str:
        rows = [f"balance={self.method}"] + [
            f"  {c:<10} {self.counts_before[c]:>7} -> {self.counts_after[c]:>7}" for c in self.counts_before]
        if self.class_weights is not None:
            rows.append("  loss weights: " + ", ".join(f"{w:.2f}" for w in self.class_weights))
        return "\n".join(rows)


def _counts(ds: FaceDataset) -> dict[str, int]:
    per = np.bincount(ds.labels, minlength=len(ds.class_names))
    return {c: int(k) for c, k in zip(ds.class_names, per)}


def balance(ds: FaceDataset, method: str | None, seed: int = 0) -> BalanceResult:
    """Balance ``ds`` (one split) with ``method``; synthetic rows get one-hot soft labels."""
    method = (method or "none").lower()
    if method not in METHODS:
        raise DataError(f"unknown balancing method {method!r}; choose one of {', '.join(METHODS)}")
    before = _counts(ds)
    present = [c for c, k in before.items() if k > 0]
    if method == "none":
        return BalanceResult(ds, method, before, before)
    if len(present) < 2:
        raise DataError(f"balancing needs at least two classes with rows; {ds.source} has {present}")
    if method == "class_weights":
        from sklearn.utils.class_weight import compute_class_weight

        labels_present = np.array(sorted(set(ds.labels.tolist())))
        w = compute_class_weight("balanced", classes=labels_present, y=ds.labels)
        weights = np.ones(len(ds.class_names), dtype=np.float32)
        weights[labels_present] = w
        return BalanceResult(ds, method, before, before, weights)
    if method == "oversample":
        from imblearn.over_sampling import RandomOverSampler

        idx, _ = RandomOverSampler(random_state=seed).fit_resample(np.arange(len(ds))[:, None], ds.labels)
        out = ds.select(idx[:, 0])
        return BalanceResult(out, method, before, _counts(out))
    return _synthetic(ds, method, before, seed)


def _synthetic(ds: FaceDataset, method: str, before: dict[str, int], seed: int) -> BalanceResult:
    from imblearn.over_sampling import ADASYN, SMOTE

    smallest = min(k for k in before.values() if k > 0)
    k = min(5, smallest - 1)
    if k < 1:
        raise DataError(f"{method}: a class has only {smallest} row; SMOTE/ADASYN need at least 2 rows per class "
                        "(use --balance oversample instead)")
    flat = ds.images.reshape(len(ds), -1).astype(np.float32)
    sampler = SMOTE(random_state=seed, k_neighbors=k) if method == "smote" else ADASYN(random_state=seed, n_neighbors=k)
    try:
        x, y = sampler.fit_resample(flat, ds.labels)
    except (ValueError, RuntimeError) as e:
        raise DataError(f"{method} failed on {ds.source}: {str(e).rstrip('.')}. A class whose rows have no neighbours of another "
                        "class gives ADASYN nothing to generate; try --balance smote or oversample") from None
    n_new = len(y) - len(ds)
    split = ds.splits[0] if len(ds) else "train"
    soft = None
    if ds.soft_labels is not None:
        soft = np.concatenate([ds.soft_labels, np.eye(len(ds.class_names), dtype=np.float32)[y[len(ds):]]])
    out = FaceDataset(
        images=np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, *ds.images.shape[1:]),
        labels=y.astype(np.int64),
        splits=np.concatenate([ds.splits, np.full(n_new, split, dtype=ds.splits.dtype)]),
        class_names=ds.class_names, source=ds.source, soft_labels=soft, dropped=dict(ds.dropped),
    )
    return BalanceResult(out, method, before, _counts(out))
