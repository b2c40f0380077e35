"""Where the FER+ majority vote puts the faces of each FER-2013 label (issue 15: why networks trained on
FER+ votes read posed JAFFE/CK+ faces differently from the 7-class `fer2013` model).

    python scripts/label_agreement.py --data ../shared/data/fer2013/fer2013.csv.gz \
        --ferplus ../shared/data/fer2013/fer2013new.csv --split Training
"""

from __future__ import annotations

import argparse

import numpy as np

from emolens.classes import FER2013_CLASSES
from emolens.data.fer2013 import read_fer2013
from emolens.data.ferplus import FERPLUS_VOTE_COLUMNS, read_votes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--ferplus", required=True)
    p.add_argument("--split", default="Training")
    p.add_argument("--min-share", type=float, default=0.03, help="leave out smaller shares (default 0.03)")
    a = p.parse_args()
    fer, votes = read_fer2013(a.data), read_votes(a.ferplus)
    rows = fer.splits == a.split
    majority = votes[rows].argmax(1)
    labels = fer.labels[rows]
    names = list(FERPLUS_VOTE_COLUMNS)
    print(f"| FER-2013 label ({a.split}) | faces | FER+ majority vote |")
    print("|---|---|---|")
    for k, cls in enumerate(FER2013_CLASSES):
        mine = majority[labels == k]
        shares = np.bincount(mine, minlength=len(names)) / max(len(mine), 1)
        text = ", ".join(f"{names[j]} {s:.0%}" for j, s in sorted(enumerate(shares), key=lambda t: -t[1])
                         if s >= a.min_share)
        print(f"| {cls} | {len(mine):,} | {text} |")


if __name__ == "__main__":
    main()
