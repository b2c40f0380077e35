"""``emolens data stats``, ``emolens data audit`` and ``emolens crop`` (photos -> face crops for training)."""

from __future__ import annotations

import json
from pathlib import Path



def cmd_stats(args) -> int:
    from ..tasks import data_stats
    from ..data.stats import format_stats

    summary = data_stats(args.path, ferplus=args.ferplus, classes=args.classes, strict=args.strict,
                         class_map=args.class_map)
    print(format_stats(summary))
    if args.json:
        from ..files import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(summary, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


def cmd_crop(args) -> int:
    from ..tasks import crop

    summary = crop(args.src, args.dst, detector=args.detector, size=args.size, margin=args.margin,
                   progress=not args.no_progress)
    print(summary.describe(Path(args.dst)))
    print(f"train on them: emolens train --data {args.dst}")
    return 0


def register(sub) -> None:
    data = sub.add_parser("data", help="inspect data sets").add_subparsers(dest="data_command", required=True)
    st = data.add_parser("stats", help="rows per split and class, and FER+ drops")
    st.add_argument("path", nargs="+", help="FER-2013 csv(.gz), a folder holding one, an image folder, a RAF-DB folder or a "
                    "path,label CSV (several = mix)")
    st.add_argument("--ferplus", help="FER+ votes file (fer2013new.csv) for a FER-2013 csv")
    st.add_argument("--classes", help="class subset: basic5, ferplus, fer2013 or a comma list")
    st.add_argument("--class-map", dest="class_map", metavar="MAP", help="numbered labels -> classes: "
                    "1=surprise,2=fear,..., a YAML file, or a preset: rafdb, affectnet, fer2013")
    st.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    st.add_argument("--json", help="also write the counts to this JSON file")
    st.set_defaults(func=cmd_stats)
    register_audit(data)

    import argparse

    from ..vision.align import DEFAULT_MARGIN
    from ..vision.crops import CROP_SIZE
    from ..vision.detectors.registry import DEFAULT_DETECTOR

    cr = sub.add_parser("crop", help="make training face crops from photos: detect, align and write one grey crop "
                        "per photo in the same folder layout", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cr.add_argument("src", help="photos in class folders: SRC/<class>/* or SRC/<split>/<class>/*")
    cr.add_argument("dst", help="where the crops go (same layout, .png); a folder outside SRC")
    cr.add_argument("--detector", default=DEFAULT_DETECTOR, help="face detector (see `emolens predict --help`)")
    cr.add_argument("--size", type=int, default=CROP_SIZE, help="side of the square crops, in pixels")
    cr.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                    help="extra border around the detector's box, as a fraction of the face size")
    cr.add_argument("--no-progress", action="store_true", help="no progress bar")
    cr.set_defaults(func=cmd_crop)


def cmd_audit(args) -> int:
    from ..tasks import audit
    from ..data.audit import format_counts

    result = audit(args.path, out=args.out, ferplus=args.ferplus, ferplus_labels=args.ferplus_labels,
                   checks=args.checks, max_distance=args.max_distance, detector=args.detector,
                   detect_side=args.detect_side, features=args.features, folds=args.folds, cap=args.cap,
                   seed=args.seed, threads=args.threads, strict=args.strict, progress=not args.no_progress)
    print(format_counts(result.report))
    print("wrote " + ", ".join(str(p) for p in result.written))
    return 0


def register_audit(data) -> None:
    from ..data.audit import CHECKS
    from ..data.contact_sheet import SHEET_CAP
    from ..data.face_check import DETECT_SIDE
    from ..data.phash import DEFAULT_MAX_DISTANCE

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
    au.add_argument("--threads", type=int, default=None, help="torch CPU threads for the features (default: torch's)")
    au.add_argument("--strict", action="store_true", help="fail on an unreadable image instead of skipping it")
    au.add_argument("--no-progress", action="store_true", help="no progress bars")
    au.set_defaults(func=cmd_audit)
