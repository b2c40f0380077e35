"""Cross-checks of an audit of FER-2013: agreement with the FER+ crowd, and the cross-split leak.

    python scripts/audit_crosscheck.py AUDIT/flagged.csv ../shared/data/fer2013/fer2013.csv.gz ../shared/data/fer2013/fer2013new.csv [--model fer2013 RUN/model/RUN.safetensors ...]

For the rows flagged ``label_issue`` and for the rows not flagged at all it prints the share whose FER+
majority vote (over the 7 FER-2013 classes; rows whose top vote is contempt, unknown or NF left out)
differs from the FER-2013 label, and how often the audit's suggested class is the FER+ majority; for
``no_face`` rows, the share with at least one NF vote and with NF as the top vote. With ``--model``:
each model's PublicTest accuracy (one pass) on the faces that have a Training twin (pHash within the
audit's default distance) and on the others.
"""

import argparse

import numpy as np
import pandas as pd

from emolens.classes import FER2013_CLASSES, FERPLUS_VOTE_COLUMNS
from emolens.data import load_dataset
from emolens.data.ferplus import read_votes

p = argparse.ArgumentParser()
p.add_argument("flagged")
p.add_argument("fer2013")
p.add_argument("votes")
p.add_argument("--model", nargs="+", help="also: these models' PublicTest accuracy with and without a Training twin")
args = p.parse_args()

ds = load_dataset(args.fer2013)
votes = read_votes(args.votes)
flagged = pd.read_csv(args.flagged)
top = votes.argmax(axis=1)
top_name = np.array(FERPLUS_VOTE_COLUMNS)[top]
to7 = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "angry",
       "disgust": "disgust", "fear": "fear"}
ferplus7 = np.array([to7.get(n, "") for n in top_name])
given = np.array(FER2013_CLASSES)[ds.labels]
comparable = ferplus7 != ""

issues = flagged[flagged.reason == "label_issue"]
rows = issues.row_id.to_numpy()
unflagged = np.setdiff1d(np.arange(len(ds)), flagged.row_id.to_numpy())
for name, idx in (("label_issue", rows), ("not flagged", unflagged)):
    idx = idx[comparable[idx]]
    print(f"{name}: {len(idx)} rows with a 7-class FER+ majority; FER+ majority != FER-2013 label: "
          f"{(ferplus7[idx] != given[idx]).mean():.1%}")
sugg = issues.set_index("row_id").suggested
idx = rows[comparable[rows]]
print(f"label_issue: suggested class == FER+ majority: {(sugg.loc[idx].to_numpy() == ferplus7[idx]).mean():.1%}; "
      f"FER-2013 label == FER+ majority: {(given[idx] == ferplus7[idx]).mean():.1%}")
nf = FERPLUS_VOTE_COLUMNS.index("NF")
for reason in ("no_face", "exact_duplicate"):
    r = flagged[flagged.reason == reason].row_id.to_numpy()
    print(f"{reason}: {len(r)} rows; >= 1 NF vote: {(votes[r, nf] > 0).mean():.1%}; NF top vote: {(top[r] == nf).mean():.1%}")
print(f"all rows: >= 1 NF vote: {(votes[:, nf] > 0).mean():.1%}; NF top vote: {(top == nf).mean():.1%}")

if args.model:
    from emolens.runtime.classifier import load_classifier

    from emolens.data.phash import DEFAULT_MAX_DISTANCE, duplicate_pairs, perceptual_hashes

    # Every PublicTest face with a Training twin (flagged.csv names only each Training row's nearest twin).
    pairs = duplicate_pairs(ds.images, perceptual_hashes(ds.images), DEFAULT_MAX_DISTANCE)
    twins = {i for p in pairs for i in (p.first, p.second) if ds.splits[p.first] != ds.splits[p.second]}
    val = ds.split("PublicTest")
    twin = np.isin(val.row_ids, [i for i in twins if ds.splits[i] == "PublicTest"])
    for model in args.model:
        right = load_classifier(model).predict_proba(val.images, tta="none").argmax(axis=1) == val.labels
        print(f"{model} on PublicTest, one pass: all {right.mean():.2%} (n={len(val)}); with a Training twin "
              f"{right[twin].mean():.2%} (n={twin.sum()}); without {right[~twin].mean():.2%} (n={(~twin).sum()})")
