"""``emolens data stats``."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_stats(args) -> int:
    from ..tasks import data_stats
    from .stats import format_stats

    summary = data_stats(args.path, ferplus=args.ferplus, classes=args.classes, strict=args.strict)
    print(format_stats(summary))
    if args.json:
        from ..files import atomic_write_bytes

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
