"""The one in-memory data set type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..classes import resolve_class_set
from ..errors import DataError, ModelError

#: Split names tried, in order, when a role ("train" / "val") is asked for and no split is named.
SPLIT_ROLES: dict[str, tuple[str, ...]] = {
    "train": ("Training", "train", "training"),
    "val": ("PublicTest", "val", "valid", "validation", "test"),
    "test": ("PrivateTest", "test", "PublicTest"),
}


@dataclass
class FaceDataset:
    """Face crops with labels.

    images: (N, H, W) uint8 grey faces. labels: (N,) int64 indexes into ``class_names``.
    splits: (N,) split name per row (``Training``, ``PublicTest``, ``train``...).
    soft_labels: optional (N, C) float32 label distributions (FER+ votes), rows sum to 1.
    dropped: rows left out while reading, counted by reason.
    paths: optional (N,) file path per row, relative to the data set's root (image folders).
    row_ids: optional (N,) int64 position of each row in its source file (0 = the first data row of a
        FER-2013 csv), kept through the rows a reader or a class subset drops: how ``emolens data
        audit`` and ``emolens train --exclude`` name csv rows.
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""
    soft_labels: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    paths: np.ndarray | None = None
    row_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise DataError(f"{self.source}: images must be (N, H, W) uint8, got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != n or len(self.splits) != n:
            raise DataError(f"{self.source}: images, labels and splits differ in length")
        if self.paths is not None and len(self.paths) != n:
            raise DataError(f"{self.source}: paths and images differ in length")
        if self.row_ids is not None and len(self.row_ids) != n:
            raise DataError(f"{self.source}: row_ids and images differ in length")
        if self.soft_labels is not None and self.soft_labels.shape != (n, len(self.class_names)):
            raise DataError(f"{self.source}: soft labels must be (N, {len(self.class_names)})")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"{self.source}: a label is outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def split_names(self) -> list[str]:
        """Split names in order of first appearance."""
        _, first = np.unique(self.splits, return_index=True)
        return [str(self.splits[i]) for i in sorted(first)]

    def select(self, mask: np.ndarray) -> "FaceDataset":
        """The rows where ``mask`` is true (or the given row indexes)."""
        return FaceDataset(
            images=self.images[mask],
            labels=self.labels[mask],
            splits=self.splits[mask],
            class_names=self.class_names,
            source=self.source,
            soft_labels=None if self.soft_labels is None else self.soft_labels[mask],
            dropped=dict(self.dropped),
            paths=None if self.paths is None else self.paths[mask],
            row_ids=None if self.row_ids is None else self.row_ids[mask],
        )

    def resolve_split(self, name: str | None, role: str = "train") -> str:
        """The split called ``name`` (case-insensitive), or the first split that fits ``role``."""
        available = self.split_names
        lower = {s.lower(): s for s in available}
        candidates = [name] if name else list(SPLIT_ROLES[role])
        for cand in candidates:
            if cand.lower() in lower:
                return lower[cand.lower()]
        wanted = repr(name) if name else f"{role} split (looked for {', '.join(SPLIT_ROLES[role])})"
        raise DataError(f"{self.source}: no {wanted}; splits present: {', '.join(available) or 'none'}")

    def split(self, name: str | None, role: str = "train") -> "FaceDataset":
        """Only the rows of one split; see :meth:`resolve_split`."""
        return self.select(self.splits == self.resolve_split(name, role))

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per split and class: ``{split: {class: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for split in self.split_names:
            per_class = np.bincount(self.labels[self.splits == split], minlength=len(self.class_names))
            out[split] = {c: int(k) for c, k in zip(self.class_names, per_class)}
        return out

    def with_classes(self, classes: str | list[str] | tuple[str, ...], allow_missing: bool = False) -> "FaceDataset":
        """Keep only rows whose class is in ``classes`` and renumber labels in that order.

        Soft labels are cut to the kept classes and renormalised; rows whose remaining
        votes sum to zero fall back to their hard label. A class this data set lacks is an error
        unless ``allow_missing`` (as when mixing sources that each cover part of the set).
        """
        wanted = resolve_class_set(classes)
        missing = [c for c in wanted if c not in self.class_names]
        if missing and not allow_missing:
            raise DataError(f"{self.source}: classes {missing} are not in this data set ({', '.join(self.class_names)})")
        remap = np.full(len(self.class_names), -1, dtype=np.int64)
        for new, name in enumerate(wanted):
            if name in self.class_names:
                remap[self.class_names.index(name)] = new
        keep = remap[self.labels] >= 0
        out = self.select(keep)
        out.labels = remap[out.labels]
        out.class_names = wanted
        dropped_n = int((~keep).sum())
        if dropped_n:
            out.dropped["class not in set"] = out.dropped.get("class not in set", 0) + dropped_n
        if out.soft_labels is not None:
            soft = np.zeros((len(out), len(wanted)), dtype=np.float32)
            for new, name in enumerate(wanted):
                if name in self.class_names:
                    soft[:, new] = out.soft_labels[:, self.class_names.index(name)]
            total = soft.sum(axis=1, keepdims=True)
            hard = np.eye(len(wanted), dtype=np.float32)[out.labels]
            out.soft_labels = np.where(total > 0, soft / np.maximum(total, 1e-12), hard).astype(np.float32)
        return out

    def in_model_order(self, model_classes, model_name: str) -> "FaceDataset":
        """The data's labels in a model's class order; refuses (naming the model) when the class sets differ."""
        if list(self.class_names) == list(model_classes):
            return self
        if set(self.class_names) == set(model_classes):
            return self.with_classes(tuple(model_classes))
        raise ModelError(
            f"model {model_name!r} predicts {len(model_classes)} classes ({', '.join(model_classes)}) but the data "
            f"has {len(self.class_names)} ({', '.join(self.class_names)}); use a model trained on these classes, "
            "or pick a common subset with --classes")

    def summary(self) -> dict:
        """Counts per split and class plus the dropped rows, as plain data (for JSON)."""
        counts = self.counts()
        return {
            "source": self.source,
            "classes": list(self.class_names),
            "total": len(self),
            "splits": {s: {"total": sum(c.values()), "per_class": c} for s, c in counts.items()},
            "dropped": dict(self.dropped),
        }
