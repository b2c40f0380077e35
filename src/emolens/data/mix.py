"""Several data sets mixed into one training set with one class set."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..classes import resolve_class_set
from ..errors import DataError
from .dataset import FaceDataset


def mix(datasets: Sequence[FaceDataset], classes: str | Sequence[str] | None = None) -> FaceDataset:
    """Concatenate data sets onto one class set.

    The class set is ``classes`` when given, else the classes every data set has in common
    (in the first data set's order). Rows of other classes are dropped and counted. Split
    names are kept; images must share one size. Soft labels survive only when all sources have them.
    """
    if not datasets:
        raise DataError("nothing to mix")
    if classes:
        wanted = resolve_class_set(classes)
    else:
        common = set.intersection(*(set(d.class_names) for d in datasets))
        wanted = tuple(c for c in datasets[0].class_names if c in common)
        if len(wanted) < 2:
            names = "; ".join(f"{d.source}: {', '.join(d.class_names)}" for d in datasets)
            raise DataError(f"the data sets share fewer than two classes ({names}); give --classes")
    shapes = {d.images.shape[1:] for d in datasets}
    if len(shapes) > 1:
        raise DataError(f"cannot mix images of different sizes {sorted(shapes)}")
    parts = [d.with_classes(wanted, allow_missing=True) for d in datasets]
    dropped: dict[str, int] = {}
    for part in parts:  # with_classes counted the rows of other classes beside the reader's drops
        for reason, k in part.dropped.items():
            dropped[f"{reason} ({part.source})"] = k
    soft = None
    if all(p.soft_labels is not None for p in parts):
        soft = np.concatenate([p.soft_labels for p in parts])
    return FaceDataset(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        splits=np.concatenate([p.splits.astype(str) for p in parts]),
        class_names=wanted,
        source=" + ".join(d.source for d in datasets),
        soft_labels=soft,
        dropped=dropped,
    )
