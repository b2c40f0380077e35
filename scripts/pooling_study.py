"""Issue 15: can the 7-class `fer2013` network, which reads JAFFE and CK+ better, lend that to the
8-class default at inference? Log-linear pooling of the two networks (the sum of their log
probabilities, `fer2013` weighted by w; contempt, which it lacks, borrows its neutral), then the
same calibration and operating point as `emolens calibrate` (vector scaling, per-class logit
adjustment within an accuracy budget, temperature), fitted on FER+ PublicTest for each w.

    python scripts/pooling_study.py --data ../shared/data/fer2013/fer2013.csv.gz \
        --ferplus ../shared/data/fer2013/fer2013new.csv --ood ../shared/data/ood-dev

Prints, per w and budget: FER+ PublicTest (validation; it fitted the operating point) accuracy one
pass and flip TTA, macro-F1 and rare-class recall (flip), the same procedure out of sample (fitted
on one of two fixed stratified halves of PublicTest, scored on the other, pooled; flip TTA: accuracy
/ macro-F1), CK+ dev 7-way (flip) and JAFFE dev (detected and aligned by the recognition pipeline,
one pass).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

import emolens
from emolens.classes import FER2013_CLASSES
from emolens.data import load_dataset
from emolens.data.splits import halves
from emolens.evaluation.calibration import calibrate
from emolens.evaluation.out_of_sample import cross_fit, score
from emolens.models.calibration import softmax
from emolens.runtime import load_classifier


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--ferplus", required=True)
    p.add_argument("--ood", required=True, type=Path)
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1,1.5", help="w values of fer2013, comma-separated")
    a = p.parse_args()

    plus, seven = load_classifier("ferplus", raw=True), load_classifier("fer2013", raw=True)
    classes = plus.classes
    fer = load_dataset(a.data, ferplus=a.ferplus).in_model_order(classes, plus.name)
    val, train = fer.split("PublicTest"), fer.split("Training")
    prior = np.bincount(train.labels, minlength=len(classes)) / len(train)
    with tempfile.TemporaryDirectory() as tmp:
        emolens.crop(a.ood / "jaffe", Path(tmp) / "jaffe", progress=False)
        jaffe = load_dataset(str(Path(tmp) / "jaffe"))
    ck = load_dataset(str(a.ood / "ckplus48"))
    ck = ck.select(np.array([ck.class_names[k] != "contempt" for k in ck.labels]))
    sets = {"val1": (val.images, "none"), "val2": (val.images, "flip"), "ck": (ck.images, "flip"),
            "jaffe": (jaffe.images, "none")}
    borrow = [seven.classes.index(c if c in seven.classes else "neutral") for c in plus.classes]
    logits = {k: (log_softmax(plus.view_logits(x, tta)), log_softmax(seven.view_logits(x, tta))[..., borrow])
              for k, (x, tta) in sets.items()}
    f7 = [plus.classes.index(c) for c in FER2013_CLASSES]
    truth7 = lambda ds: np.array([FER2013_CLASSES.index(ds.class_names[k]) for k in ds.labels])  # noqa: E731
    folds = halves(val.labels)
    print("| w (fer2013) | budget | PublicTest one pass | flip | macro-F1 flip | flip out of sample | contempt | "
          "disgust | fear | CK+ dev 7-way | JAFFE dev |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in (float(v) for v in a.weights.split(",")):
        pooled = {k: z8 + w * z7 for k, (z8, z7) in logits.items()}
        for budget in (0.005, 0.01):
            cal = calibrate(pooled["val1"][0], val.labels, prior, max_accuracy_drop=budget)
            prob = {k: softmax(cal.apply(z)).mean(0) for k, z in pooled.items()}
            oos = cross_fit(lambda rows: calibrate(pooled["val1"][0][rows], val.labels[rows], prior,
                                                   max_accuracy_drop=budget),
                            lambda c, rows: softmax(c.apply(pooled["val2"][:, rows])).mean(0), folds).argmax(1)
            outside = score(val.labels, oos, len(classes))
            one, flip = prob["val1"].argmax(1), prob["val2"].argmax(1)
            rec = recall_score(val.labels, flip, labels=range(len(classes)), average=None, zero_division=0)
            ck_acc = (prob["ck"][:, f7].argmax(1) == truth7(ck)).mean()
            jaffe_acc = (prob["jaffe"][:, f7].argmax(1) == truth7(jaffe)).mean()
            print(f"| {w:g} | {budget:.3f} | {(one == val.labels).mean():.2%} | {(flip == val.labels).mean():.2%} | "
                  f"{f1_score(val.labels, flip, average='macro'):.3f} | "
                  f"{outside.accuracy:.2%} / {outside.macro_f1:.3f} | "
                  + " | ".join(f"{rec[classes.index(c)]:.0%}" for c in ("contempt", "disgust", "fear"))
                  + f" | {ck_acc:.1%} | {jaffe_acc:.1%} |", flush=True)


if __name__ == "__main__":
    main()
