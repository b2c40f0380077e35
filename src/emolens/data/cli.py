"""``emolens data stats`` and ``emolens data audit``."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EmolensError


def cmd_stats(args) -> int:
    from . import load_dataset
    from .stats import format_stats

    ds = load_dataset(args.path, ferplus=args.ferplus, classes=args.classes, strict=args.strict)
    summary = ds.summary()
    print(format_stats(summary))
    if args.json:
        from ..models.weights import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(summary, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


def register(sub) -> None:
    data = sub.add_parser("data", help="inspect data sets").add_subparsers(dest="data_command", required=True)
    st = data.add_parser("stats", help="rows per split and class, and FER+ drops")
    st.add_argument("path", nargs="+", help="FER-2013 csv(.gz), a folder holding one, or an image folder (several = mix)")
    st.add_argument("--ferplus", help="FER+ votes file (fer2013new.csv) for a FER-2013 csv")
    st.add_argument("--classes", help="class subset: basic5, ferplus, fer2013 or a comma list")
    st.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    st.add_argument("--json", help="also write the counts to this JSON file")
    st.set_defaults(func=cmd_stats)
    register_audit(data)


def cmd_audit(args) -> int:
    """Load the data set, wire in the face detector and the feature network, run the audit, write its files."""
    from ..models.weights import atomic_write_bytes
    from . import load_dataset
    from .audit import REASONS, contact_sheet_png, findings_csv, format_counts, parse_checks, run_audit

    checks = parse_checks(args.checks)
    out = Path(args.out)
    ds = load_dataset(args.path, strict=args.strict)
    options: dict = {}
    if "faces" in checks:
        from ..vision.detectors import create_detector

        detector = create_detector(args.detector, min_score=0.05)
        options.update(detector=detector, threshold=detector.default_min_score, detect_side=args.detect_side)
    votes = label_ds = None
    if args.ferplus:
        from .ferplus import read_votes

        if ds.row_ids is None:
            raise EmolensError(f"--ferplus needs a FER-2013 csv, but {args.path} is an image folder")
        votes = read_votes(args.ferplus)
        if "labels" in checks and args.ferplus_labels:
            label_ds = load_dataset(args.path, ferplus=args.ferplus)
    elif args.ferplus_labels:
        raise EmolensError("--ferplus-labels needs --ferplus VOTES")
    if "labels" in checks:
        options["features_of"] = _feature_extractor(args.features or ("fer2013" if label_ds is not None else "ferplus"),
                                                    args.threads, not args.no_progress)
    report = run_audit(ds, checks, max_distance=args.max_distance, label_ds=label_ds, votes=votes, folds=args.folds,
                       seed=args.seed, progress=not args.no_progress, **options)
    atomic_write_bytes(out / "flagged.csv", findings_csv(report))
    written = [out / "flagged.csv"]
    for reason in REASONS:
        png = contact_sheet_png(report, reason, cap=args.cap)
        sheet = out / f"sheet_{reason}.png"
        if png is not None:
            atomic_write_bytes(sheet, png)
            written.append(sheet)
        else:
            sheet.unlink(missing_ok=True)        # no stale sheet from an earlier audit into the same folder
    summary = {"source": ds.source, "rows": len(ds), "counts": report.counts(), "checks": checks,
               "cross_split_pairs": report.cross_split_pairs, "seconds": report.seconds, "notes": report.notes}
    atomic_write_bytes(out / "audit.json", (json.dumps(summary, indent=2) + "\n").encode())
    print(format_counts(report))
    print("wrote " + ", ".join(str(p) for p in written + [out / "audit.json"]))
    return 0


def _feature_extractor(model: str, threads: int | None, progress: bool):
    """uint8 faces -> the penultimate-layer features of a bundled (or given) network, frozen; in
    chunks, with rate and ETA."""
    import sys

    import numpy as np
    import torch
    from tqdm import tqdm

    from ..engine.head import penultimate_features
    from ..models.weights import load_model
    from ..runtime.resolve import resolve_weights

    if threads:
        torch.set_num_threads(threads)
    net, spec = load_model(resolve_weights(model))

    def features_of(faces):
        bar = tqdm(total=len(faces), desc=f"audit: {spec.name} features", unit="face", disable=not progress,
                   file=sys.stderr, mininterval=2)
        parts = []
        for start in range(0, len(faces), 2048):
            parts.append(penultimate_features(net, spec, faces[start:start + 2048]))
            bar.update(len(parts[-1]))
        bar.close()
        return np.concatenate(parts)

    return features_of


def register_audit(data) -> None:
    from .audit import CHECKS, DETECT_SIDE, SHEET_CAP
    from .phash import DEFAULT_MAX_DISTANCE

    au = data.add_parser(
        "audit", help="find duplicate faces (also across splits), crops without a face and likely label errors",
        description="Writes OUT/flagged.csv (one row per flagged row and reason; `emolens train --exclude` reads it), "
                    "a contact sheet OUT/sheet_<reason>.png per reason and OUT/audit.json, and prints counts per reason.")
    au.add_argument("path", help="FER-2013 csv(.gz), a folder holding one, or an image folder")
    au.add_argument("--ferplus", help="FER+ votes file for a FER-2013 csv: adds the rows whose top vote is NF (ferplus_nf)")
    au.add_argument("--ferplus-labels", action="store_true",
                    help="with --ferplus: audit the FER+ majority labels (rows FER+ keeps) instead of the FER-2013 ones")
    au.add_argument("--out", default="audit", help="output folder (default: audit)")
    au.add_argument("--checks", default=",".join(CHECKS), help=f"comma list of {', '.join(CHECKS)} (default: all)")
    au.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE,
                    help=f"largest pHash Hamming distance (of 64 bits) of near duplicates (default {DEFAULT_MAX_DISTANCE})")
    au.add_argument("--detector", default=None, help="face detector for the no-face check (default: the default detector)")
    au.add_argument("--detect-side", type=int, default=DETECT_SIDE,
                    help=f"crops are upscaled to this side before detection (default {DETECT_SIDE})")
    au.add_argument("--features", metavar="MODEL", default=None,
                    help="network whose frozen penultimate features feed the label-issue model (default: the bundled "
                         "model trained on the other label set: ferplus when auditing FER-2013 labels, fer2013 with --ferplus-labels)")
    au.add_argument("--folds", type=int, default=5, help="folds of the out-of-fold probabilities (default 5)")
    au.add_argument("--cap", type=int, default=SHEET_CAP, help=f"faces per contact sheet (default {SHEET_CAP})")
    au.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    au.add_argument("--threads", type=int, default=None, help="torch threads for the features (default: torch's)")
    au.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    au.add_argument("--no-progress", action="store_true", help="no progress bars")
    au.set_defaults(func=cmd_audit)
