"""Fit on one part, report on another (issue 24): cross-fitting a post-hoc step over two fixed
halves of a validation split, and the rule that decides whether the step ships.

A post-hoc step (temperature, vector scaling, per-class operating point, ensemble weights) chosen
and judged on the same faces overstates itself. Cross-fitted, it is fitted on half A
(:func:`emolens.data.splits.halves`) and applied to half B, then fitted on B and applied to A; the
pooled predictions cover the whole split, and no face is scored by a step that was fitted on it.
That pooled number is the step's out-of-sample number. It is also reported without the faces
that have a Training twin (:func:`emolens.data.phash.has_twin`), which the network itself has, in
effect, been trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

#: How much of the other number a step may lose while winning on one: 0.3 points (accuracy in
#: percentage points, macro-F1 in hundredths).
SHIP_TOLERANCE = 0.003
_EPS = 1e-9            # float noise: a loss of exactly 0.3 points is within the tolerance

Step = TypeVar("Step")


@dataclass(frozen=True)
class Score:
    """Accuracy, macro-F1 and the recall of each class (in class order; NaN for a class with no
    face here) of one set of predictions."""

    accuracy: float
    macro_f1: float
    recall: tuple[float, ...] = ()

    def __eq__(self, other: object) -> bool:   # NaN (a class with no face) equals NaN here
        if not isinstance(other, Score):
            return NotImplemented
        return len(self.recall) == len(other.recall) and bool(np.array_equal(
            [self.accuracy, self.macro_f1, *self.recall], [other.accuracy, other.macro_f1, *other.recall],
            equal_nan=True))

    __hash__ = None   # equality treats NaN as equal, which hash() of a float NaN does not

    def to_dict(self) -> dict:
        d = {"accuracy": self.accuracy, "macro_f1": self.macro_f1}
        if self.recall:   # JSON has no NaN: a class with no face is null
            d["recall"] = [None if np.isnan(r) else round(r, 4) for r in self.recall]
        return d


def score(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> Score:
    """Accuracy, macro-F1 (over all ``n_classes``, absent ones counting 0) and per-class recall of
    class predictions."""
    from sklearn.metrics import f1_score, recall_score

    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if len(labels) == 0:
        return Score(float("nan"), float("nan"), (float("nan"),) * n_classes)
    f1 = f1_score(labels, predicted, labels=list(range(n_classes)), average="macro", zero_division=0)
    recall = tuple(float(r) for r in recall_score(labels, predicted, labels=list(range(n_classes)), average=None,
                                                   zero_division=np.nan))
    return Score(float((labels == predicted).mean()), float(f1), recall)


def cross_fit(fit: Callable[[np.ndarray], Step], apply: Callable[[Step, np.ndarray], np.ndarray],
              folds: Sequence[np.ndarray]) -> np.ndarray:
    """The pooled out-of-sample output of a step over two (or more) disjoint ``folds`` of row
    indexes that together cover the split: for each fold, ``fit`` the step on the other folds'
    rows and ``apply(step, fold)`` to this fold's rows. Row i of the result comes from a step that
    never saw row i."""
    folds = [np.asarray(f) for f in folds]
    everything = np.concatenate(folds)
    if len(np.unique(everything)) != len(everything):
        raise ValueError("the folds overlap: a face would be scored by a step fitted on it")
    out = None
    for k, rows in enumerate(folds):
        others = np.concatenate([f for j, f in enumerate(folds) if j != k])
        part = np.asarray(apply(fit(np.sort(others)), rows))
        if out is None:
            out = np.empty((len(everything),) + part.shape[1:], dtype=part.dtype)
        out[rows] = part
    return out


@dataclass(frozen=True)
class ShipDecision:
    """Whether a post-hoc step ships, and why (one line)."""

    ships: bool
    reason: str


def _points(delta: float) -> str:
    return f"{delta * 100:+.2f}"


def ship_decision(before: Score, after: Score, tolerance: float = SHIP_TOLERANCE) -> ShipDecision:
    """The ship rule: a post-hoc step ships only if, out of sample, it wins on accuracy or on
    macro-F1 (``after`` above ``before``) and loses no more than ``tolerance`` (0.3 points) of the
    other. ``before`` is what users get without the step, ``after`` with it, both out of sample."""
    d_acc, d_f1 = after.accuracy - before.accuracy, after.macro_f1 - before.macro_f1
    moved = f"out of sample accuracy {_points(d_acc)} points, macro-F1 {_points(d_f1)} points"
    wins = [name for name, d in (("accuracy", d_acc), ("macro-F1", d_f1)) if d > _EPS]
    if not wins:
        return ShipDecision(False, f"does not ship: {moved}; it wins on neither")
    for name, d in (("accuracy", d_acc), ("macro-F1", d_f1)):
        if d < -tolerance - _EPS:
            return ShipDecision(False, f"does not ship: {moved}; it loses more than {tolerance * 100:.1f} points "
                                f"of {name}")
    return ShipDecision(True, f"ships: {moved} (wins on {' and '.join(wins)}, loses at most "
                        f"{tolerance * 100:.1f} points)")


def ship_decision_by_ece(before: Score, after: Score, ece_before: float, ece_after: float,
                         tolerance: float = SHIP_TOLERANCE) -> ShipDecision:
    """For a step that is not meant to change predictions (a temperature alone; with TTA it can
    move a few): it ships when it lowers the out-of-sample expected calibration error and loses
    no more than ``tolerance`` of accuracy or macro-F1 out of sample."""
    d_acc, d_f1 = after.accuracy - before.accuracy, after.macro_f1 - before.macro_f1
    moved = (f"out of sample ECE {ece_before:.4f} -> {ece_after:.4f}, accuracy {_points(d_acc)} points, "
             f"macro-F1 {_points(d_f1)} points")
    if min(d_acc, d_f1) < -tolerance - _EPS:
        return ShipDecision(False, f"does not ship: {moved}; it loses more than {tolerance * 100:.1f} points")
    if ece_after < ece_before - _EPS:
        return ShipDecision(True, f"ships: {moved}")
    return ShipDecision(False, f"does not ship: {moved}; the ECE does not fall")
