"""Data audit: duplicate faces, crops without a face, and labels that are likely wrong.

``emolens data audit PATH`` runs the checks below over every split of a data set and writes one
CSV row per (row, reason) plus a contact sheet per reason (:mod:`emolens.cli.data` does the
loading, the detector and the feature network; this module only takes arrays and objects, so that
``data`` imports nothing above it):

- ``exact_duplicate`` / ``near_duplicate``: two rows of one split with identical pixels, or with
  pHashes within a few bits (:mod:`emolens.data.phash`); the later row is flagged, the earlier kept.
- ``cross_split_duplicate``: the same, across splits (training faces that are also validation
  faces); the row outside the validation split is flagged, so excluding it leaves validation as is.
- ``no_face``: the face detector finds no face in the crop, upscaled (detectors are built for
  photos, not 48-pixel crops) and, failing that, padded, larger, equalised, tilted and turned on
  its side (:mod:`emolens.data.face_check`).
- ``ferplus_nf``: FER+ annotators' top vote is NF (not a face), the rule FER+ training drops by.
- ``label_issue``: cleanlab's confident learning (``cleanlab.filter.find_label_issues``) on
  out-of-fold class probabilities from a logistic regression on frozen network features.

Scores, per reason: duplicates, the pHash Hamming distance (0 = same hash); ``no_face``, the best
face score the detector gave (below its threshold); ``ferplus_nf``, the NF share of the votes;
``label_issue``, the out-of-fold probability of the given label (cleanlab's self-confidence).
"""

from __future__ import annotations

import csv
import io
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError
from .dataset import FaceDataset
from .face_check import DETECT_SIDE, NO_FACE_SCORE, best_face_scores

EXACT, NEAR, CROSS = "exact_duplicate", "near_duplicate", "cross_split_duplicate"
NO_FACE, FERPLUS_NF, LABEL_ISSUE = "no_face", "ferplus_nf", "label_issue"
REASONS = (EXACT, NEAR, CROSS, NO_FACE, FERPLUS_NF, LABEL_ISSUE)
#: Reasons whose most suspicious rows have the highest score (the others: the lowest).
HIGH_SCORE_FIRST = {FERPLUS_NF}
DUPLICATE_REASONS = (EXACT, NEAR, CROSS)
#: Below this out-of-fold accuracy of the label model, its label findings are mostly its own errors:
#: they are listed for review but left out of ``train --exclude`` unless asked for (docs/experiments/audit.md).
RELIABLE_LABEL_ACCURACY = 0.6



@dataclass
class Finding:
    """One flagged row: its position in the audited data set, why, and the evidence."""

    row: int
    reason: str
    score: float
    label: str                    # the label audited (FER+ majority label when votes were given)
    pair: int | None = None       # duplicates: the row it duplicates (kept)
    suggested: str = ""           # label_issue: the class the out-of-fold model prefers


@dataclass
class AuditReport:
    """Findings over one data set, with the counts and timings the CLI prints."""

    dataset: FaceDataset
    findings: list[Finding] = field(default_factory=list)
    cross_split_pairs: dict[str, int] = field(default_factory=dict)   # {"exact": n, "near": n}
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)                # reasons looked for
    unreliable: list[str] = field(default_factory=list)             # reasons not excluded by default

    def counts(self) -> dict[str, int]:
        """Flagged rows per reason (every reason that was checked, zeros included), and distinct rows overall."""
        out = {r: 0 for r in self.checked}
        for f in self.findings:
            out[f.reason] = out.get(f.reason, 0) + 1
        out["any"] = len({f.row for f in self.findings})
        return out

    def ids(self) -> tuple[str, np.ndarray]:
        """The column that names rows in the CSV and the value per dataset position: ``path`` for image
        folders, else ``row_id`` (the row's position in its csv)."""
        return row_identity(self.dataset)


def row_identity(ds: FaceDataset) -> tuple[str, np.ndarray]:
    """How rows of ``ds`` are named in audit and exclusion files: ``("path", paths)`` for image folders,
    ``("row_id", row_ids)`` for a csv; a data set with neither (a mix) cannot be named."""
    if ds.paths is not None:
        return "path", ds.paths.astype(str)
    if ds.row_ids is not None:
        return "row_id", ds.row_ids
    raise DataError(f"{ds.source}: its rows have no ids (a mix of data sets?); audit or exclude one data set at a time")


def _validation_split(ds: FaceDataset) -> str | None:
    try:
        return ds.resolve_split(None, "val")
    except DataError:
        return None


def find_duplicates(ds: FaceDataset, max_distance: int, progress: bool = False) -> tuple[list[Finding], dict[str, int]]:
    """Duplicate findings (one per flagged row and reason: its nearest twin) and the cross-split pair counts."""
    from .phash import duplicate_pairs, perceptual_hashes

    hashes = perceptual_hashes(ds.images, progress=progress)
    pairs = duplicate_pairs(ds.images, hashes, max_distance)
    val = _validation_split(ds)
    best: dict[tuple[int, str], Finding] = {}
    cross = {"exact": 0, "near": 0}
    for p in pairs:
        a, b = p.first, p.second
        if ds.splits[a] != ds.splits[b]:
            cross["exact" if p.exact else "near"] += 1
            reason = CROSS
            if ds.splits[b] == val:       # keep the validation face, flag the other one
                a, b = b, a
        else:
            reason = EXACT if p.exact else NEAR
        key = (b, reason)
        if key not in best or p.distance < best[key].score:
            best[key] = Finding(b, reason, float(p.distance), ds.class_names[ds.labels[b]], pair=a)
    return sorted(best.values(), key=lambda f: (f.reason, f.row)), cross


def find_non_faces(ds: FaceDataset, detector, threshold: float, side: int = DETECT_SIDE,
                   progress: bool = False) -> list[Finding]:
    """Rows in which ``detector`` finds no face scoring ``threshold`` or more in any view of
    :func:`emolens.data.face_check.upscale_views`; the score is the best one seen."""
    scores = best_face_scores(ds.images, detector, threshold, side, progress)
    return [Finding(int(i), NO_FACE, round(float(scores[i]), 4), ds.class_names[ds.labels[i]])
            for i in np.flatnonzero(scores < threshold)]


def ferplus_non_faces(ds: FaceDataset, votes: np.ndarray) -> list[Finding]:
    """Rows whose FER+ top vote is NF (ties go to the face classes, as in :func:`read_ferplus`).
    ``votes``: the (rows of the csv, 10) counts of :func:`emolens.data.ferplus.read_votes`."""
    from ..classes import FERPLUS_VOTE_COLUMNS

    _, ids = row_identity(ds)
    if ds.row_ids is None:
        raise DataError("FER+ votes apply to a FER-2013 csv, not to an image folder")
    if ids.max(initial=-1) >= len(votes):
        raise DataError(f"the votes file has {len(votes)} rows but the csv has more; they must align row for row")
    v = votes[ids]
    nf = FERPLUS_VOTE_COLUMNS.index("NF")
    is_nf = v.argmax(axis=1) == nf
    share = v[:, nf] / v.sum(axis=1)
    return [Finding(int(i), FERPLUS_NF, round(float(share[i]), 4), ds.class_names[ds.labels[i]])
            for i in np.flatnonzero(is_nf)]


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Class probabilities for every row from a model that never saw that row's label: scikit-learn's
    ``cross_val_predict`` of a standardised multinomial logistic regression, stratified ``folds``.
    Columns follow ``np.unique(labels)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = np.bincount(labels)[np.unique(labels)].min()
    if smallest < folds:
        raise DataError(f"label issues need at least {folds} rows per class (for {folds}-fold out-of-fold "
                        f"probabilities); the smallest class has {smallest} (more rows, or --checks "
                        "duplicates,faces)")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labels, cv=cv, method="predict_proba", n_jobs=1)


def find_label_issues(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                      rows: np.ndarray | None = None) -> list[Finding]:
    """Likely label errors by confident learning (cleanlab), ranked by self-confidence.

    ``labels``: (N,) class indexes; ``probs``: (N, K) out-of-fold probabilities over ``np.unique(labels)``;
    ``rows``: the audited data set's position of each of the N rows (default 0..N-1)."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    present = np.unique(labels)
    dense = np.searchsorted(present, labels)
    issues = cleanlab_issues(dense, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    rows = np.arange(len(labels)) if rows is None else rows
    return [Finding(int(rows[i]), LABEL_ISSUE, round(float(probs[i, dense[i]]), 4), class_names[labels[i]],
                    suggested=class_names[present[probs[i].argmax()]]) for i in issues]


@contextmanager
def timed(seconds: dict[str, float], step: str):
    """Adds the seconds the ``with`` block took to ``seconds[step]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = round(seconds.get(step, 0.0) + time.perf_counter() - t0, 1)


CHECKS = ("duplicates", "faces", "labels")
#: The flagged.csv column that says whether ``train --exclude`` drops the row without --exclude-reasons.
DEFAULT_EXCLUDE = "default_exclude"


def parse_checks(checks: str | Sequence[str]) -> list[str]:
    """``"duplicates,faces"`` -> a checked list of :data:`CHECKS`."""
    wanted = [c.strip() for c in checks.split(",") if c.strip()] if isinstance(checks, str) else list(checks)
    unknown = sorted(set(wanted) - set(CHECKS))
    if unknown or not wanted:
        raise DataError(f"unknown audit check(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CHECKS)}")
    return wanted


def run_audit(ds: FaceDataset, checks: Sequence[str] = CHECKS, *, max_distance: int = 4, detector=None,
              threshold: float = NO_FACE_SCORE, detect_side: int = DETECT_SIDE, features_of=None,
              label_ds: FaceDataset | None = None, votes: np.ndarray | None = None, folds: int = 5, seed: int = 0,
              progress: bool = False) -> AuditReport:
    """Every check in ``checks`` over ``ds``; see the module docstring.

    ``detector`` (for ``faces``): see :func:`find_non_faces`. ``features_of`` (for ``labels``): a
    function from uint8 faces (N, H, W) to (N, D) features. ``label_ds``: the labels to audit when
    they are not ``ds``'s own (FER+ majority labels: a subset of ``ds``'s rows, matched by row id).
    ``votes``: FER+ vote counts, adds ``ferplus_nf``.
    """
    checks = parse_checks(checks)
    if "faces" in checks and detector is None or "labels" in checks and features_of is None:
        raise ValueError("run_audit: the faces check needs a detector, the labels check a features_of function")
    report = AuditReport(ds)
    if "duplicates" in checks:
        report.checked += list(DUPLICATE_REASONS)
        with timed(report.seconds, "duplicates"):
            found, report.cross_split_pairs = find_duplicates(ds, max_distance, progress)
        report.findings += found
    if "faces" in checks:
        report.checked.append(NO_FACE)
        with timed(report.seconds, "face detector"):
            report.findings += find_non_faces(ds, detector, threshold, detect_side, progress)
    if votes is not None:
        report.checked.append(FERPLUS_NF)
        report.findings += ferplus_non_faces(ds, votes)
    if "labels" in checks:
        audit_labels(report, features_of, label_ds, folds, seed, progress)
    return report


def audit_labels(report: AuditReport, features_of, label_ds: FaceDataset | None = None, folds: int = 5,
                 seed: int = 0, progress: bool = False) -> None:
    """The ``labels`` check of :func:`run_audit`, adding to ``report``: cleanlab on out-of-fold
    probabilities (with fewer folds on a set whose smallest class has fewer rows), the label model's
    out-of-fold accuracy, and below :data:`RELIABLE_LABEL_ACCURACY` the verdict that its findings
    are unreliable (``report.unreliable``: not excluded by default)."""
    ds = report.dataset
    report.checked.append(LABEL_ISSUE)
    audited = ds if label_ds is None else label_ds
    rows = np.arange(len(ds))
    if label_ds is not None:
        position = {int(r): i for i, r in enumerate(ds.row_ids)}
        rows = np.array([position[int(r)] for r in label_ds.row_ids])
    sizes = np.bincount(audited.labels, minlength=len(audited.class_names))
    present = np.flatnonzero(sizes)
    smallest = present[sizes[present].argmin()]
    if 2 <= sizes[smallest] < folds:     # a small set: as many folds as its smallest class has rows
        folds = int(sizes[smallest])
        report.notes.append(f"label model: {folds}-fold, as {audited.class_names[smallest]} has only {folds} rows")
    with timed(report.seconds, "features"):
        features = features_of(audited.images)
    if progress:
        print(f"audit: {folds}-fold out-of-fold probabilities ({len(audited)} rows, {features.shape[1]} "
              "features)...", file=sys.stderr, flush=True)
    with timed(report.seconds, "out-of-fold probabilities"):
        probs = out_of_fold_probabilities(features, audited.labels, folds, seed)
    with timed(report.seconds, "cleanlab"):
        report.findings += find_label_issues(audited.labels, probs, audited.class_names, rows)
    accuracy = float((np.unique(audited.labels)[probs.argmax(axis=1)] == audited.labels).mean())
    report.notes.append(f"out-of-fold accuracy of the label model: {accuracy:.4f} over {len(audited)} rows")
    if accuracy < RELIABLE_LABEL_ACCURACY:
        report.unreliable.append(LABEL_ISSUE)
        report.notes.append(
            f"label findings unreliable: the label model is right on {accuracy:.0%} of the rows out of fold "
            f"(under {RELIABLE_LABEL_ACCURACY:.0%}: a small set, or features that do not separate its classes), "
            f"so most {LABEL_ISSUE} rows are its own mistakes; listed for review, but `emolens train --exclude` "
            f"keeps them unless --exclude-reasons names {LABEL_ISSUE}")


def findings_csv(report: AuditReport) -> bytes:
    """The flagged rows as CSV: id column (``row_id`` or ``path``), split, label, reason, score, pair
    (the twin's id), pair_split, pair_label, suggested, default_exclude (``no`` for a reason the audit
    found unreliable: ``train --exclude`` skips the row unless --exclude-reasons names it); sorted by
    reason, then most suspicious first."""
    ds = report.dataset
    id_col, ids = report.ids()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([id_col, "split", "label", "reason", "score", "pair", "pair_split", "pair_label", "suggested",
                DEFAULT_EXCLUDE])
    for f in ordered(report.findings):
        p = f.pair
        w.writerow([ids[f.row], ds.splits[f.row], f.label, f.reason, f.score,
                    "" if p is None else ids[p], "" if p is None else ds.splits[p],
                    "" if p is None else ds.class_names[ds.labels[p]], f.suggested,
                    "no" if f.reason in report.unreliable else "yes"])
    return buf.getvalue().encode()


def ordered(findings: list[Finding]) -> list[Finding]:
    """By reason (in :data:`REASONS` order), most suspicious first within a reason."""
    return sorted(findings, key=lambda f: (REASONS.index(f.reason), -f.score if f.reason in HIGH_SCORE_FIRST else f.score, f.row))


def format_counts(report: AuditReport) -> str:
    """The counts per reason, cross-split pairs and timings, as printed by the CLI."""
    counts = report.counts()
    lines = [f"audit of {report.dataset.source}: {len(report.dataset)} rows "
             f"({', '.join(f'{s} {int((report.dataset.splits == s).sum())}' for s in report.dataset.split_names)})"]
    lines += [f"  {reason:<22} {n:>6}" for reason, n in counts.items() if reason != "any"]
    lines.append(f"  {'flagged rows (any)':<22} {counts['any']:>6}")
    if report.cross_split_pairs:
        lines.append(f"  cross-split duplicate pairs: {report.cross_split_pairs['exact']} exact, "
                     f"{report.cross_split_pairs['near']} near")
    lines += [f"  note: {n}" for n in report.notes]
    lines.append("  seconds: " + ", ".join(f"{k} {v:g}" for k, v in report.seconds.items()))
    return "\n".join(lines)
