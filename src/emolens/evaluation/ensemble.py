"""Soft-vote weights for an ensemble, tuned on a validation split (``emolens ensemble tune``).

The ensemble itself (the spec file, the packed network) is :mod:`emolens.models.ensemble`;
here its members are scored with the runtime classifier and the weights chosen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import load_dataset
from ..errors import ModelError
from ..models.ensemble import EnsembleSpec, Member
from .evaluate import score_dataset


def soft_vote(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return sum(wi * p for wi, p in zip(w, probs)).astype(np.float32)


def _nll(p: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None)).mean())


def tune_weights(probs: Sequence[np.ndarray], labels: np.ndarray, objective: str = "nll", seed: int = 0,
                 samples: int = 2000) -> np.ndarray:
    """Member weights (summing to 1) for soft voting, chosen on held-out ``probs``/``labels``.

    ``nll``: the weights that minimise the ensemble's negative log-likelihood (a smooth, convex
    problem in the weights, solved with L-BFGS over a softmax parametrisation). ``accuracy``: the
    best accuracy among the NLL optimum, equal weights and ``samples`` random Dirichlet draws
    (ties go to the lower NLL).
    """
    import torch

    if objective not in ("nll", "accuracy"):
        raise ModelError(f"unknown objective {objective!r}; choose nll or accuracy")
    k = len(probs)
    labels = np.asarray(labels, dtype=np.int64)
    if k == 1:
        return np.ones(1)
    stacked = torch.from_numpy(np.stack([p[np.arange(len(labels)), labels] for p in probs], 1).astype(np.float64))
    logits = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -torch.log((stacked * logits.softmax(0)).sum(1).clamp_min(1e-12)).mean()
        loss.backward()
        return loss

    opt.step(closure)
    best = logits.detach().softmax(0).numpy()
    if objective == "nll":
        return best
    rng = np.random.default_rng(seed)
    candidates = [best, np.full(k, 1.0 / k)] + list(rng.dirichlet(np.ones(k), size=samples))

    def score(w):
        p = soft_vote(probs, w)
        return (float((p.argmax(1) == labels).mean()), -_nll(p, labels))

    return max(candidates, key=score)


def cross_fitted_weights(probs: Sequence[np.ndarray], labels: np.ndarray, objective: str,
                         folds: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The soft vote's out-of-sample probabilities: weights tuned on one half, applied to the other
    (:func:`emolens.evaluation.out_of_sample.cross_fit`), pooled over the split."""
    from .out_of_sample import cross_fit

    return cross_fit(lambda rows: tune_weights([p[rows] for p in probs], labels[rows], objective),
                     lambda w, rows: soft_vote([p[rows] for p in probs], w), folds)


def _twins(ds, part) -> np.ndarray:
    """Which faces of ``part`` have a twin in ``ds``'s training split (none when it has no such split)."""
    from ..data.phash import has_twin
    from ..errors import DataError

    try:
        train = ds.split(None, "train")
    except DataError:
        return np.zeros(len(part), dtype=bool)
    return has_twin(part.images, train.images)


def tune_ensemble(models: Sequence[str | Path], data, ferplus=None, classes=None, split: str | None = None,
                  objective: str = "nll", name: str = "ensemble", out: str | Path | None = None,
                  backend: str = "onnx", threads: int | None = None, ship_rule: bool = True) -> tuple[EnsembleSpec, dict]:
    """Tune soft-vote weights of ``models`` on a validation split; write ``out`` (a spec) if given.

    The tuned weights are judged out of sample (cross-fitted on two fixed halves of the split,
    :func:`emolens.data.splits.halves`) against equal weights, which need no fitting; they are
    stored only if they pass the ship rule (:func:`emolens.evaluation.out_of_sample.ship_decision`),
    else the spec keeps equal weights (``ship_rule=False``: the tuned weights regardless).

    Returns the spec and a dict of :class:`~emolens.evaluation.metrics.Metrics`: ``members``
    (one per model), ``uniform`` (equal weights), ``tuned`` (in sample), ``tuned_out_of_sample``,
    plus ``decision`` (the ship rule's) and ``summary`` (a text table).
    """
    from ..data.splits import HALVES_SEED, halves
    from .out_of_sample import score, ship_decision

    from ..runtime import load_classifier

    if len(models) < 2:
        raise ModelError("an ensemble needs at least two models")
    # raw: the soft vote (SoftVote) averages the members' own softmax, so the weights are tuned on it
    clfs = [load_classifier(m, backend=backend, threads=threads, raw=True) for m in models]
    classes0 = clfs[0].classes
    for clf in clfs[1:]:
        if sorted(clf.classes) != sorted(classes0):
            raise ModelError(f"{clf.name} predicts {', '.join(clf.classes)} but {clfs[0].name} predicts "
                             f"{', '.join(classes0)}; ensemble members must share one class set")
    ds = load_dataset(data, ferplus=ferplus, classes=classes)
    part = ds.split(split, "val")
    part = part.in_model_order(classes0, clfs[0].name)
    probs = []
    for clf in clfs:  # one pass each: the packed soft vote sees one view; TTA applies to the whole vote
        p = clf.predict_proba(part.images, tta="none")
        probs.append(p[:, [clf.classes.index(c) for c in classes0]])
    tuned_weights = tune_weights(probs, part.labels, objective)
    uniform = np.full(len(probs), 1.0 / len(probs))
    pooled = cross_fitted_weights(probs, part.labels, objective, halves(part.labels, HALVES_SEED))
    twin = _twins(ds, part)
    n_classes = len(classes0)
    decision = ship_decision(score(part.labels, soft_vote(probs, uniform).argmax(1), n_classes),
                             score(part.labels, pooled.argmax(1), n_classes))
    weights = tuned_weights if decision.ships or not ship_rule else uniform
    results = {
        "members": [score_dataset(p, part, classes0) for p in probs],
        "uniform": score_dataset(soft_vote(probs, uniform), part, classes0),
        "tuned": score_dataset(soft_vote(probs, tuned_weights), part, classes0),
        "tuned_out_of_sample": score_dataset(pooled, part, classes0),
        "decision": decision,
    }
    split_name = part.split_names[0] if len(part) else str(split)
    kept = ~twin
    rows = [f"{'model':<40} {'weight':>7} {'accuracy':>9} {'macro-F1':>9} {'no twins':>9}"]
    no_twins = lambda p: score(part.labels[kept], p.argmax(1)[kept], n_classes).accuracy  # noqa: E731
    for clf, w, p, m in zip(clfs, weights, probs, results["members"]):
        rows.append(f"{clf.name[:40]:<40} {w:>7.3f} {m.accuracy:>9.4f} {m.macro_f1:>9.4f} {no_twins(p):>9.4f}")
    for label, key, p in (("soft vote, equal weights", "uniform", soft_vote(probs, uniform)),
                          (f"soft vote, tuned ({objective}), in sample", "tuned", soft_vote(probs, tuned_weights)),
                          (f"soft vote, tuned ({objective}), out of sample", "tuned_out_of_sample", pooled)):
        rows.append(f"{label:<40} {'':>7} {results[key].accuracy:>9.4f} {results[key].macro_f1:>9.4f} "
                    f"{no_twins(p):>9.4f}")
    stored = "tuned" if weights is tuned_weights else "equal"
    chosen, oos = ("tuned", "_out_of_sample") if stored == "tuned" else ("uniform", "")   # equal weights: nothing fitted
    results["summary"] = (f"{split_name} (n={len(part)}, {int(twin.sum())} with a training twin), weights tuned on "
                          f"this split; out of sample: tuned on one of two fixed stratified halves (seed "
                          f"{HALVES_SEED}), scored on the other, pooled\n" + "\n".join(rows)
                          + f"\ntuned weights {decision.reason}; stored: {stored} weights")

    out_path = Path(out) if out else None
    members = []
    for m, w in zip(models, weights):
        text = str(m)
        if out_path is not None and Path(text).exists():  # paths relative to the spec's folder
            text = os.path.relpath(Path(text).resolve(), out_path.resolve().parent)
        members.append(Member(text, round(float(w), 6)))
    spec = EnsembleSpec(name=name, members=members,
                        tuned={"split": split_name, "objective": objective, "n": int(len(part)),
                               "weights": [round(float(w), 6) for w in tuned_weights],
                               "ships": decision.ships, "reason": decision.reason, "stored": stored,
                               "accuracy_out_of_sample": results["tuned_out_of_sample"].accuracy,
                               "macro_f1_out_of_sample": results["tuned_out_of_sample"].macro_f1},
                        metrics={"split": split_name, "accuracy": results[chosen].accuracy,
                                 "macro_f1": results[chosen].macro_f1, "n": int(len(part)),
                                 "accuracy_out_of_sample": results[chosen + oos].accuracy,
                                 "macro_f1_out_of_sample": results[chosen + oos].macro_f1})
    if out_path is not None:
        spec.save(out_path)
    return spec, results
