"""``emolens data stats`` and ``emolens crop`` (photos -> face crops for training)."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_stats(args) -> int:
    from ..tasks import data_stats
    from .stats import format_stats

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
