"""Fitting a model's calibration and operating point, and measuring calibration.

A model's calibration (:class:`emolens.models.calibration.Calibration`, stored in its spec and
applied by the runtime classifier) is ``softmax((logits + bias) / T)``:

- ``bias``: the operating point, a per-class logit shift ``-tau_c * log(prior_c)`` (post-hoc logit
  adjustment, Menon et al. 2021, with one strength per class), chosen on a validation split;
- ``T``: temperature scaling (Guo et al. 2017), fitted after the shift by minimising the negative
  log-likelihood on the same split.

Expected calibration error uses 15 equal-width confidence bins, as in Guo et al.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models.calibration import Calibration, softmax

ECE_BINS = 15


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS):
    """Top-label confidence in ``bins`` equal-width bins: (edges, mean confidence, accuracy, count)
    per bin; bins with no faces give NaN."""
    probs = np.asarray(probs)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / count
        acc = np.bincount(which, weights=correct, minlength=bins) / count
    return edges, mean_conf, acc, count


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the bin-size-weighted mean gap between confidence and accuracy."""
    if len(probs) == 0:
        return 0.0
    _, mean_conf, acc, count = reliability_bins(probs, labels, bins)
    filled = count > 0
    return float((count[filled] * np.abs(acc[filled] - mean_conf[filled])).sum() / count.sum())


def fit_vector_scale(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One positive factor per class (vector scaling without its bias, Guo et al. 2017) that
    minimises the negative log-likelihood: it corrects classes whose logits are squeezed by label
    smoothing or soft targets unevenly, which one temperature cannot."""
    from scipy.optimize import minimize

    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(labels))

    def nll(log_w: np.ndarray) -> float:
        s = z * np.exp(log_w)
        s = s - s.max(axis=1, keepdims=True)
        return float(-(s[rows, labels] - np.log(np.exp(s).sum(axis=1))).mean())

    res = minimize(nll, np.zeros(z.shape[1]), method="L-BFGS-B", bounds=[(np.log(0.2), np.log(5.0))] * z.shape[1])
    return np.exp(res.x)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature with the lowest expected calibration error on these logits, searched on a
    fine log-spaced grid from 0.2 to 5 (one parameter: it cannot fit single faces; the negative
    log-likelihood's optimum, the textbook choice, left the ECE above 0.05 on the bundled fer2013)."""
    logits = np.asarray(logits, dtype=np.float32)
    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 241))
    eces = [expected_calibration_error(softmax(logits / t), labels) for t in grid]
    return float(grid[int(np.argmin(eces))])


OBJECTIVES = ("balanced_accuracy", "macro_f1")
DEFAULT_OBJECTIVE = "macro_f1"     # what the operating point maximises unless told (the CLI and tasks.calibrate say the same)


def fit_operating_point(logits: np.ndarray, labels: np.ndarray, prior: np.ndarray, max_accuracy_drop: float = 0.005,
                        objective: str = DEFAULT_OBJECTIVE, min_accuracy: float | None = None,
                        grid: np.ndarray | None = None, sweeps: int = 3) -> np.ndarray:
    """Per-class strengths tau (bias_c = -tau_c log prior_c) that maximise ``objective`` on these
    validation logits while accuracy stays within ``max_accuracy_drop`` of the raw argmax's (and at
    least ``min_accuracy`` when given).

    ``macro_f1`` (the default: the number the ship rule weighs against accuracy) or
    ``balanced_accuracy`` (the mean recall: every class counts the same, whatever its share of the
    training set; it moves rare classes further and, judged out of sample, cost the bundled models
    0.8-0.9 points of accuracy). Coordinate ascent over a coarse grid (default -1..1.5 in steps
    of 0.1), a few sweeps, starting from the raw output (tau = 0): a coarse grid and few sweeps
    keep it from fitting single faces.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    log_prior = np.log(np.clip(np.asarray(prior, dtype=np.float64), 1e-6, None))
    grid = np.round(np.arange(-1.0, 1.51, 0.1), 2) if grid is None else np.asarray(grid)
    n_classes = logits.shape[1]
    all_labels = list(range(n_classes))

    def score(tau: np.ndarray) -> tuple[float, float]:
        pred = (logits - tau * log_prior).argmax(1)
        if objective == "macro_f1":
            value = f1_score(labels, pred, labels=all_labels, average="macro", zero_division=0)
        else:
            value = balanced_accuracy_score(labels, pred)
        return float((pred == labels).mean()), float(value)

    tau = np.zeros(n_classes)
    raw_accuracy, best = score(tau)
    floor = raw_accuracy - max_accuracy_drop
    if min_accuracy is not None:
        floor = max(floor, min_accuracy)
    for _ in range(sweeps):
        changed = False
        for c in range(n_classes):
            for value in grid:
                trial = tau.copy()
                trial[c] = value
                acc, obj = score(trial)
                if acc >= floor and obj > best + 1e-9:
                    best, tau, changed = obj, trial, True
        if not changed:
            break
    return tau


def calibrate(logits: np.ndarray, labels: np.ndarray, prior: np.ndarray | None = None, fitted_on: str = "",
              operating_point: bool = True, max_accuracy_drop: float = 0.005, objective: str = DEFAULT_OBJECTIVE,
              min_accuracy: float | None = None, vector_scaling: bool = True) -> Calibration:
    """Fit vector scaling (when ``vector_scaling``), then the operating point on the scaled logits
    (when ``operating_point`` and a prior is given; the argmax is decided there), then the temperature."""
    logits = np.asarray(logits, dtype=np.float32)
    n = logits.shape[1]
    scale = np.round(fit_vector_scale(logits, labels), 4) if vector_scaling else np.ones(n)
    scaled = logits * scale.astype(np.float32)
    if operating_point and prior is not None:
        tau = fit_operating_point(scaled, labels, prior, max_accuracy_drop, objective, min_accuracy)
        bias = -tau * np.log(np.clip(np.asarray(prior, dtype=np.float64), 1e-6, None))
    else:
        tau, bias = np.zeros(n), np.zeros(n)
    shifted = scaled + bias.astype(np.float32)
    temperature = fit_temperature(shifted, labels)
    cal = Calibration(temperature=round(temperature, 4), scale=[float(v) for v in scale] if vector_scaling else [],
                      logit_bias=[round(float(b), 4) for b in bias],
                      prior=[] if prior is None else [round(float(p), 6) for p in prior],
                      strength=[round(float(t), 2) for t in tau], fitted_on=fitted_on)
    cal.ece_before = round(expected_calibration_error(softmax(logits), labels), 4)
    cal.ece_after = round(expected_calibration_error(softmax(cal.apply(logits)), labels), 4)
    return cal


def shipped_metrics(cal: Calibration, view_logits: dict[str, np.ndarray], labels: np.ndarray, classes, split: str) -> dict:
    """What users get on ``split`` with ``cal`` applied (stored as ``cal.metrics``): accuracy and
    macro-F1 per TTA mode, from each mode's raw logits (V, N, C) (``none``: the plain keys,
    ``flip``: ``flip_*``), probabilities averaged over the views as the runtime does."""
    from .metrics import compute_metrics

    out: dict = {"split": split, "n": int(len(labels))}
    for mode, z in view_logits.items():
        m = compute_metrics(labels, softmax(cal.apply(z)).mean(0).argmax(1), list(classes))
        prefix = "" if mode == "none" else f"{mode}_"
        out[f"{prefix}accuracy"], out[f"{prefix}macro_f1"] = m.accuracy, m.macro_f1
    return out


def plot_reliability(path: str | Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> None:
    """A reliability diagram: accuracy against confidence per bin, one line per named (probs, labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import save_figure

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    for i, (name, (probs, labels)) in enumerate(curves.items()):
        edges, conf, acc, count = reliability_bins(probs, labels)
        ece = expected_calibration_error(probs, labels)
        ok = count > 0
        ax.plot(conf[ok], acc[ok], "o-", ms=4, label=f"{name} (ECE {ece:.3f})")
        centres = (edges[:-1] + edges[1:]) / 2
        width = (edges[1] - edges[0]) / (len(curves) + 1)
        hist.bar(centres + (i - (len(curves) - 1) / 2) * width, count, width=width, label=name)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"reliability ({ECE_BINS} bins)")
    hist.set_xlabel("confidence (top probability)")
    hist.set_ylabel("faces")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def calibrate_model(model, data, ferplus=None, split: str | None = None, prior_split: str | None = None,
                    operating_point: bool = True, max_accuracy_drop: float = 0.005, out=None, plot=None,
                    backend: str = "onnx", objective: str = DEFAULT_OBJECTIVE, min_accuracy: float | None = None,
                    ship_rule: bool = True):
    """Fit ``model``'s calibration (and operating point) on ``split`` of ``data``, judge every step
    out of sample (:mod:`emolens.evaluation.calibration_stages`) and store in the model's spec the
    last step that passes the ship rule (with ``ship_rule=False``: the last step asked for):
    beside ``out`` (a copy of the weights) or, without ``out``, in the model's own spec.

    The operating point's prior is the class frequencies of ``prior_split`` (the training split);
    that split's faces are also the twins left out of the out-of-sample numbers.
    Returns (Calibration, path of the spec written, StageReport)."""
    import json

    from ..data import load_dataset
    from ..data.phash import has_twin
    from ..data.splits import HALVES_SEED, halves
    from ..files import atomic_write_bytes
    from ..models.resolve import resolve_weights
    from ..models.weights import tta_mode
    from ..runtime import load_classifier
    from .calibration_stages import judge_stages

    weights = resolve_weights(model)
    if weights.suffix.lower() == ".onnx":
        raise ModelError(f"{weights}: an exported ONNX file keeps the calibration it was exported with; calibrate "
                         "the model's .safetensors + .json spec, then export it again")
    clf = load_classifier(model, backend=backend, raw=True)
    ds = load_dataset(data, ferplus=ferplus).in_model_order(clf.classes, clf.name)
    val = ds.split(split, "val")
    train = ds.split(prior_split, "train")
    prior = np.bincount(train.labels, minlength=len(clf.classes)) / len(train)
    views = {"none": clf.view_logits(val.images, "none"), "flip": clf.view_logits(val.images, "flip")}
    own = tta_mode(clf.spec.tta)      # judged in one pass (the pipeline) and in the model's own TTA (evaluate)
    decide_on = ("none", own) if own in views and own != "none" else ("none",)
    report = judge_stages(views, val.labels, prior, halves(val.labels, HALVES_SEED), has_twin(val.images, train.images),
                          decide_on, HALVES_SEED, operating_point=operating_point, classes=clf.classes,
                          max_accuracy_drop=max_accuracy_drop, objective=objective, min_accuracy=min_accuracy)
    chosen = report.shipped if ship_rule else report.stages[-1]
    cal = chosen.calibration
    cal.fitted_on = f"{val.split_names[0]} (n={len(val)}, one pass)"
    cal.objective = objective if any(cal.strength) else ""
    cal.ece_before = round(expected_calibration_error(softmax(views["none"][0]), val.labels), 4)
    cal.ece_after = round(chosen.ece_in, 4)
    cal.ece_cross_fitted = round(chosen.ece_out, 4)
    cal.metrics = shipped_metrics(cal, views, val.labels, clf.classes, val.split_names[0])
    for mode in views:   # what users get, measured out of sample, beside the in-sample numbers
        prefix = "" if mode == "none" else f"{mode}_"
        cal.metrics[f"{prefix}accuracy_out_of_sample"] = chosen.out_of_sample[mode].accuracy
        cal.metrics[f"{prefix}macro_f1_out_of_sample"] = chosen.out_of_sample[mode].macro_f1
        cal.metrics[f"{prefix}recall_out_of_sample"] = dict(zip(clf.classes, chosen.out_of_sample[mode].to_dict()["recall"]))
    cal.out_of_sample = {**report.to_dict(), "stored": chosen.name}
    logits = views["none"][0]
    spec = json.loads(weights.with_suffix(".json").read_text())
    if out:
        target = Path(out).with_suffix(".safetensors")
        atomic_write_bytes(target, weights.read_bytes())
        onnx_file = (spec.get("onnx") or {}).get("file")
        if onnx_file:  # the copy ships its ONNX network too, named after it
            atomic_write_bytes(target.with_suffix(".onnx"), (weights.parent / onnx_file).read_bytes())
            spec["onnx"] = {**spec["onnx"], "file": target.with_suffix(".onnx").name}
    else:
        target = weights
    spec_path = target.with_suffix(".json")
    spec["calibration"] = cal.to_dict()
    atomic_write_bytes(spec_path, (json.dumps(spec, indent=2) + "\n").encode())
    if plot:
        plot_reliability(plot, {"raw": (softmax(logits), val.labels), "calibrated": (softmax(cal.apply(logits)), val.labels)},
                         title=f"{clf.name} on {cal.fitted_on}")
    return cal, spec_path, report
