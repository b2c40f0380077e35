"""Judging a model's post-hoc steps out of sample before they ship (issue 24).

``emolens calibrate`` fits three nested steps on a validation split: a temperature alone; vector
scaling and the temperature; and on top of those the per-class operating point. Each is fitted on
the whole split (in sample, what ships) and cross-fitted on its two fixed halves
(:mod:`emolens.evaluation.out_of_sample`, out of sample, what it is judged by). A step ships only
if it passes the ship rule against the last step that shipped before it, in every test-time
augmentation mode it is judged on (one pass, what the recognition pipeline runs, and the model's
own TTA, what ``emolens evaluate`` runs: a step that wins in one and loses in the other does not
ship); the spec then stores the last step that shipped (or the raw network, when none did).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..models.calibration import Calibration, softmax
from .calibration import calibrate, expected_calibration_error
from .out_of_sample import Score, ShipDecision, cross_fit, score, ship_decision, ship_decision_by_ece

RAW, TEMPERATURE, SCALED, OPERATING_POINT = "raw network", "temperature", "vector scaling + temperature", \
    "+ operating point"
#: (name, calibrate() options) of the steps, each one on top of the one before.
STAGES = ((TEMPERATURE, {"vector_scaling": False, "operating_point": False}),
          (SCALED, {"vector_scaling": True, "operating_point": False}),
          (OPERATING_POINT, {"vector_scaling": True, "operating_point": True}))


@dataclass
class StageResult:
    """One step's numbers: per TTA mode, in sample (fitted and scored on the whole split), out of
    sample (cross-fitted, pooled) and out of sample without the faces that have a Training twin;
    the one-pass ECE in and out of sample; and the ship decision (the raw network has none)."""

    name: str
    calibration: Calibration
    in_sample: dict[str, Score]
    out_of_sample: dict[str, Score]
    without_twins: dict[str, Score]
    ece_in: float
    ece_out: float
    decision: ShipDecision | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "ece_in_sample": round(self.ece_in, 4), "ece_out_of_sample": round(self.ece_out, 4)}
        for key, scores in (("in_sample", self.in_sample), ("out_of_sample", self.out_of_sample),
                            ("out_of_sample_without_twins", self.without_twins)):
            d[key] = {mode: s.to_dict() for mode, s in scores.items()}
        if self.decision is not None:
            d["ships"], d["reason"] = self.decision.ships, self.decision.reason
        return d


@dataclass
class StageReport:
    """Every step judged, which one ships, and how the out-of-sample numbers were made."""

    stages: list[StageResult]
    shipped: StageResult
    decided_on: tuple[str, ...]           # the TTA modes the rule was applied to (a step ships if it passes in each)
    halves: tuple[int, int]               # faces per half
    twins: int                            # faces with a Training twin, left out of the last columns
    seed: int
    classes: tuple[str, ...] = ()         # class names, for the recall table (default: class 0, 1, ...)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"protocol": f"cross-fitted on two fixed stratified halves (seed {self.seed}, {self.halves[0]} + "
                            f"{self.halves[1]} faces), pooled; {self.twins} faces with a Training twin left out "
                            "of out_of_sample_without_twins",
                "decided_on": list(self.decided_on), "shipped": self.shipped.name, "classes": list(self.classes),
                "stages": [s.to_dict() for s in self.stages]}

    def table(self) -> str:
        """In-sample and out-of-sample numbers side by side, one block per TTA mode and one row per
        step, then the ship rule's verdict on each step."""
        lines = []
        for mode in self.stages[0].in_sample:
            lines.append(f"{mode_name(mode):<30} {'in sample':<16} {'out of sample':<16} "
                         f"{'out of sample, no twins':<24} {'ECE':<4}")
            lines.append(f"{'':<30} " + f"{'accuracy':<9} {'F1':<6} " * 3 + f"{'in':<6}out")
            for st in self.stages:
                cells = " ".join(f"{s[mode].accuracy:<9.2%} {s[mode].macro_f1:<6.3f}"
                                 for s in (st.in_sample, st.out_of_sample, st.without_twins))
                ece = f" {st.ece_in:<6.3f}{st.ece_out:.3f}" if mode == "none" else ""
                lines.append(f"{st.name:<30} {cells}{ece}")
        lines += self.recall_table()
        verdicts = [f"  {st.name}: {st.decision.reason}" for st in self.stages if st.decision is not None]
        lines = [line.rstrip() for line in lines]
        return "\n".join(lines + [f"ship rule ({' and '.join(mode_name(m) for m in self.decided_on)}, "
                                   "out of sample, each step against the last one that shipped):"]
                         + verdicts + [f"ships: {self.shipped.name}"])

    def recall_table(self) -> list[str]:
        """Each class's recall out of sample (cross-fitted, pooled), one row per step and TTA mode:
        what a step does to the rare classes, which accuracy and macro-F1 hide."""
        n = len(self.stages[0].out_of_sample["none"].recall)
        names = self.classes or tuple(str(c) for c in range(n))
        width = max(6, *(len(c) + 1 for c in names))
        lines = ["recall per class, out of sample".ljust(40) + "".join(c.ljust(width) for c in names)]
        for mode in self.stages[0].out_of_sample:
            for st in self.stages:
                cells = "".join(("-" if np.isnan(r) else f"{r:.0%}").ljust(width) for r in st.out_of_sample[mode].recall)
                lines.append(f"{st.name + ', ' + mode_name(mode):<40}{cells}")
        return lines


def mode_name(mode: str) -> str:
    """A TTA mode as the tables and cards name it: "one pass", "flip TTA", "ten_crop TTA"."""
    return "one pass" if mode == "none" else f"{mode} TTA"


def _decision(per_mode: dict[str, ShipDecision]) -> ShipDecision:
    """One verdict from the rule's verdict in each TTA mode: ships only if it ships in all."""
    if len(per_mode) == 1:
        return next(iter(per_mode.values()))
    ships = all(d.ships for d in per_mode.values())
    reasons = "; ".join(f"{mode_name(m)}: {d.reason}" for m, d in per_mode.items())
    return ShipDecision(ships, f"{'ships' if ships else 'does not ship'} ({reasons})")


def _probs(cal: Calibration, views: np.ndarray) -> np.ndarray:
    """What the runtime gives: the calibrated softmax of each view (V, N, C), averaged over views."""
    return softmax(cal.apply(views)).mean(0)


def judge_stages(view_logits: dict[str, np.ndarray], labels: np.ndarray, prior: np.ndarray | None,
                 folds: tuple[np.ndarray, np.ndarray], twin: np.ndarray, decide_on: str | Sequence[str], seed: int,
                 operating_point: bool = True, classes: Sequence[str] = (), **fit_options) -> StageReport:
    """Fit every step on the one-pass logits (``view_logits["none"]``, (1, N, C)), in sample and
    cross-fitted over ``folds``; score each TTA mode of ``view_logits`` ((V, N, C) per mode) and
    apply the ship rule in each mode of ``decide_on`` (one or several), each step against the last
    one that shipped; a step ships only if it passes in every one of them. ``classes`` names the
    columns of the recall table."""
    modes = (decide_on,) if isinstance(decide_on, str) else tuple(decide_on)
    one_pass = np.asarray(view_logits["none"][0], dtype=np.float32)
    labels = np.asarray(labels)
    n_classes = one_pass.shape[1]
    kept = ~np.asarray(twin, dtype=bool)

    all_modes = list(view_logits)

    def result(name: str, cal_all: Calibration, fit) -> StageResult:
        # one cross-fit (one fit per fold) scores every mode: (N, modes, C) pooled probabilities
        pooled = cross_fit(fit, lambda cal, rows: np.stack([_probs(cal, view_logits[m][:, rows]) for m in all_modes],
                                                           axis=1), folds)
        inside, outside, clean = {}, {}, {}
        for i, mode in enumerate(all_modes):
            inside[mode] = score(labels, _probs(cal_all, view_logits[mode]).argmax(1), n_classes)
            predicted = pooled[:, i].argmax(1)
            outside[mode] = score(labels, predicted, n_classes)
            clean[mode] = score(labels[kept], predicted[kept], n_classes)
        return StageResult(name, cal_all, inside, outside, clean,
                           expected_calibration_error(_probs(cal_all, view_logits["none"]), labels),
                           expected_calibration_error(pooled[:, all_modes.index("none")], labels))

    raw = Calibration()
    stages = [result(RAW, raw, lambda rows: raw)]
    shipped = stages[0]
    for name, options in STAGES:
        if options["operating_point"] and (not operating_point or prior is None):
            continue
        opts = {**fit_options, **options}
        st = result(name, calibrate(one_pass, labels, prior, **opts),
                    lambda rows, opts=opts: calibrate(one_pass[rows], labels[rows], prior, **opts))
        st.decision = _decision({
            m: (ship_decision_by_ece(shipped.out_of_sample[m], st.out_of_sample[m], shipped.ece_out, st.ece_out)
                if name == TEMPERATURE else ship_decision(shipped.out_of_sample[m], st.out_of_sample[m]))
            for m in modes})
        if st.decision.ships:
            shipped = st
        stages.append(st)
    return StageReport(stages, shipped, modes, (len(folds[0]), len(folds[1])), int((~kept).sum()), seed,
                       tuple(classes))
