"""Measure a bundled model's calibration and its cross-data-set numbers and write them into its card
(between marker comments, so running it again replaces them):

    python scripts/card_sections.py ferplus --data ../shared/data/fer2013 \
        --ferplus ../shared/data/fer2013/fer2013new.csv --ood ../shared/data/ood-dev
    python scripts/card_sections.py fer2013 --data ../shared/data/fer2013 --ood ../shared/data/ood-dev

Sections: "Calibration and operating point" (what the spec stores, ECE before / after, the
validation numbers with and without it, a reliability diagram PNG in docs/models/) and "Beyond
FER-2013" (CK+ and JAFFE dev halves, raw and as shipped, with the commands that reproduce them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emolens.data import load_dataset
from emolens.evaluation.evaluate import evaluate
from emolens.evaluation.calibration import expected_calibration_error, plot_reliability
from emolens.models.calibration import Calibration
from emolens.runtime import load_classifier
from emolens.weights import bundled_path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- calibration and beyond: scripts/card_sections.py -->", "<!-- end of scripts/card_sections.py -->"


def calibration_section(name: str, data, ferplus) -> str:
    clf, raw = load_classifier(name), load_classifier(name, raw=True)
    cal = Calibration.from_dict(clf.spec.calibration)
    val = load_dataset(data, ferplus=ferplus).split("PublicTest").with_classes(tuple(clf.classes))
    png = REPO / "docs" / "models" / f"{name}-reliability.png"
    curves = {"raw": (raw.predict_proba(val.images, tta="none"), val.labels),
              "calibrated": (clf.predict_proba(val.images, tta="none"), val.labels)}
    plot_reliability(png, curves, title=f"{name} on PublicTest (validation, n={len(val)}, one pass)")
    flip = {k: expected_calibration_error(c.predict_proba(val.images, tta="flip"), val.labels)
            for k, c in (("raw", raw), ("calibrated", clf))}
    rows = []
    for label, is_raw in (("raw network (`--raw`)", True), ("as shipped: calibrated, with the operating point", False)):
        one = evaluate(name, data, ferplus=ferplus, split="PublicTest", tta="none", raw=is_raw)
        two = evaluate(name, data, ferplus=ferplus, split="PublicTest", tta="flip", raw=is_raw)
        recall = ", ".join(f"{c} {one.per_class[c]['recall']:.0%} / {two.per_class[c]['recall']:.0%}" for c in clf.classes)
        rows.append(f"| {label} | {one.accuracy:.2%} | {two.accuracy:.2%} | {one.macro_f1:.3f} / {two.macro_f1:.3f} | {recall} |")
    strengths = ", ".join(f"{c} {t:+.1f}" for c, t in zip(clf.classes, cal.strength))
    scale = ", ".join(f"{c} {s:.2f}" for c, s in zip(clf.classes, cal.scale))
    votes = f" --ferplus {ferplus}" if ferplus else ""
    return f"""## Calibration and operating point

The spec stores a calibration that every probability emolens gives out goes through (Python API,
`predict`, `video`, `webcam`, `serve`, `evaluate`; ONNX Runtime and torch alike):
`softmax((logits x scale + bias) / T)`, fitted on PublicTest (the validation split, one pass) by
`emolens calibrate --model {name} --data {data}{votes}`. `--raw` (CLI) or `raw=True` (Python) gives the network's
own softmax back.

- vector scaling (one factor per class, negative log-likelihood): {scale}
- operating point: bias = -tau x log(training prior), tau per class chosen to maximise
  {cal.objective.replace('_', ' ')} within the validation-accuracy budget: {strengths}
- temperature {cal.temperature:.3f} (lowest ECE)
- expected calibration error (15 bins), PublicTest one pass: **{cal.ece_before:.3f} raw -> {cal.ece_after:.3f}
  calibrated**; fitted on one half of PublicTest and measured on the other (an honest out-of-sample
  estimate): {cal.ece_cross_fitted:.3f}; with flip TTA: {flip['raw']:.3f} raw -> {flip['calibrated']:.3f}

| PublicTest (validation; it chose the calibration) | accuracy, one pass | accuracy, flip TTA (`evaluate`'s default) | macro-F1, one pass / flip | recall per class, one pass / flip |
|---|---|---|---|---|
{chr(10).join(rows)}

![reliability diagram](../../../docs/models/{png.name})
"""


def beyond_section(name: str, ood: Path) -> str:
    rows = []
    for label, is_raw in (("raw network (`--raw`)", True), ("as shipped", False)):
        ck = evaluate(name, [str(ood / "ckplus48")], classes="fer2013", tta="flip", raw=is_raw)
        j1 = evaluate(name, [str(ood / "jaffe")], classes="fer2013", tta="none", detect=True, raw=is_raw)
        j2 = evaluate(name, [str(ood / "jaffe")], classes="fer2013", tta="flip", detect=True, raw=is_raw)
        lo, hi = ck.extra["ci95"]["accuracy"]
        jlo, jhi = j1.extra["ci95"]["accuracy"]
        neutral = ck.extra["predicted"].get("neutral", 0) / ck.n
        rows.append(f"| {label} | {ck.accuracy:.1%} [{lo:.1%}, {hi:.1%}] | {neutral:.0%} | "
                    f"{ck.extra['accuracy_restricted']:.1%} | {j1.accuracy:.1%} [{jlo:.1%}, {jhi:.1%}] | {j2.accuracy:.1%} |")
    return f"""## Beyond FER-2013

Faces from other data sets, the development half of their subjects (`../shared/data/ood-dev`;
the other half judges the bundled models independently). CK+: posed 48x48 crops, scored 7-way
(argmax over the seven FER-2013 classes, contempt rows left out; CK+ has no neutral face, so
every "neutral" is wrong), flip TTA. JAFFE: uncropped 256x256 frames through the whole pipeline
(detect, align, classify), largest face. 95% intervals resampled by subject (CK+ 56, JAFFE 4).

| | CK+ dev 7-way (n=507) | CK+ faces called neutral | CK+ restricted to its 6 classes | JAFFE dev, one pass (n=85) | JAFFE dev, flip TTA |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Reproduce: `emolens evaluate --model {name} --data {ood}/ckplus48 --classes fer2013 --tta flip` and
`emolens evaluate --model {name} --data {ood}/jaffe --classes fer2013 --detect --no-tta` (add `--raw` for the first row).
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--data", required=True)
    p.add_argument("--ferplus")
    p.add_argument("--ood", required=True, type=Path)
    a = p.parse_args()
    card = bundled_path(a.name).with_suffix(".md")
    text = card.read_text()
    block = f"{START}\n{calibration_section(a.name, a.data, a.ferplus)}\n{beyond_section(a.name, a.ood)}{END}\n"
    if START in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        head, tail = text.split("## Training", 1)
        text = head + block + "\n## Training" + tail
    card.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
