"""Train / validation splits for data that comes without one (``ROOT/<class>/*``, a CSV without a
split column): a seeded, stratified hold-out, so every class is validated on and the same seed
always holds out the same faces. And the two fixed halves of a validation split that post-hoc steps
(calibration, operating point, ensemble weights) are cross-fitted on (:func:`halves`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .dataset import FaceDataset

TRAIN, VAL = "train", "val"
#: The seed of the fixed halves a validation split is cross-fitted on (issue 24).
HALVES_SEED = 24


@dataclass
class TrainVal:
    """The two parts training uses, and how the validation part was chosen (for the run's output)."""

    train: FaceDataset
    val: FaceDataset
    how: str
    held_out: bool = False           # the validation part was held out of the training faces (no split to name)

    def describe(self) -> str:
        """One line per part: rows in all and per class."""
        lines = [f"validation: {self.how}"]
        for name, part in (("train", self.train), ("val", self.val)):
            per_class = np.bincount(part.labels, minlength=len(part.class_names))
            lines.append(f"  {name:<5} {len(part):>7,} faces  "
                         + ", ".join(f"{c} {n:,}" for c, n in zip(part.class_names, per_class)))
        return "\n".join(lines)


def hold_out(ds: FaceDataset, fraction: float, seed: int = 0) -> tuple[FaceDataset, FaceDataset]:
    """Split ``ds`` into train and validation rows, stratified by class (scikit-learn's
    ``train_test_split``). Errors name the class that would be left without validation (or
    training) faces, with its count, rather than training a model that is never checked on it."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise DataError(f"--val-fraction must lie between 0 and 1 (exclusive), not {fraction}")
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    for name, n in zip(ds.class_names, counts):
        if 0 < n < 2:
            raise DataError(f"{ds.source}: class {name} has {n} image; a validation split needs at least 2 per class "
                            "(one to train on, one to validate)")
    present = counts > 0
    rows = np.arange(len(ds))
    n_val = int(np.ceil(fraction * len(ds)))
    if n_val < int(present.sum()) or len(ds) - n_val < int(present.sum()):
        raise DataError(f"{ds.source}: --val-fraction {fraction} holds out {n_val} of {len(ds)} faces, which leaves "
                        f"some of the {int(present.sum())} classes without validation (or training) images; use a "
                        "fraction nearer 0.5 or more images")
    train_rows, val_rows = train_test_split(rows, test_size=n_val, random_state=seed, stratify=ds.labels)
    for part, what, other in ((val_rows, "validation", "raise --val-fraction"), (train_rows, "training", "lower --val-fraction")):
        got = np.bincount(ds.labels[part], minlength=len(ds.class_names))
        short = [f"{c} ({n} images)" for c, n, g in zip(ds.class_names, counts, got) if n and not g]
        if short:
            raise DataError(f"{ds.source}: --val-fraction {fraction} leaves class {', '.join(short)} without "
                            f"{what} images; {other} or add images of that class")
    train, val = ds.select(np.sort(train_rows)), ds.select(np.sort(val_rows))
    train.splits = np.full(len(train), TRAIN)
    val.splits = np.full(len(val), VAL)
    return train, val


def halves(labels: np.ndarray, seed: int = HALVES_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed, stratified halves of a split's rows (scikit-learn's two-fold ``StratifiedKFold``,
    shuffled with ``seed``): sorted row indexes A and B, every row in exactly one, each class
    split as evenly as it can be (counts differ by at most one; a class with one face
    lies in one half). The same labels and seed give the
    same halves on every call, so a number measured on half B today is measured on the same faces
    tomorrow."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if len(labels) < 2:
        raise DataError(f"two halves need at least 2 faces, not {len(labels)}")
    import warnings

    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    with warnings.catch_warnings():   # a class with one face lands in one half: nothing to warn about
        warnings.simplefilter("ignore", UserWarning)
        _, first = next(folds.split(np.zeros(len(labels)), labels))
    second = np.setdiff1d(np.arange(len(labels)), first)
    return np.sort(first), second
