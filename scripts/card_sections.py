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
from emolens.evaluation.calibration_stages import mode_name
from emolens.models.calibration import Calibration
from emolens.runtime import load_classifier
from emolens.weights import bundled_path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- calibration and beyond: scripts/card_sections.py -->", "<!-- end of scripts/card_sections.py -->"


def judged_table(cal: Calibration) -> str:
    """Every post-hoc step `emolens calibrate` judged: in sample beside out of sample (and without
    the faces that have a Training twin), flip TTA and one pass, with the ship rule's verdict."""
    oos = cal.out_of_sample
    judged_in = " and ".join(mode_name(m) for m in oos.get("decided_on", ["none"]))
    rows = ["| step | in sample, flip / one pass | out of sample, flip / one pass | out of sample without twins, flip | "
            f"macro-F1 flip: in / out of sample | ECE one pass: in / out of sample | ship rule ({judged_in}, out of sample) |",
            "|---|---|---|---|---|---|---|"]
    for st in oos["stages"]:
        i, o, t = st["in_sample"], st["out_of_sample"], st["out_of_sample_without_twins"]
        verdict = st.get("reason", "the reference").replace("|", "/")
        rows.append(f"| {st['name']} | {i['flip']['accuracy']:.2%} / {i['none']['accuracy']:.2%} | "
                    f"{o['flip']['accuracy']:.2%} / {o['none']['accuracy']:.2%} | {t['flip']['accuracy']:.2%} | "
                    f"{i['flip']['macro_f1']:.3f} / {o['flip']['macro_f1']:.3f} | "
                    f"{st['ece_in_sample']:.3f} / {st['ece_out_of_sample']:.3f} | {verdict} |")
    return "\n".join(rows)


def calibration_section(name: str, data, ferplus, fit_options: str = "") -> str:
    clf, raw = load_classifier(name), load_classifier(name, raw=True)
    cal = Calibration.from_dict(clf.spec.calibration)
    val = load_dataset(data, ferplus=ferplus).split("PublicTest").with_classes(tuple(clf.classes))
    png = REPO / "docs" / "models" / f"{name}-reliability.png"
    curves = {"raw": (raw.predict_proba(val.images, tta="none"), val.labels),
              "calibrated": (clf.predict_proba(val.images, tta="none"), val.labels)}
    plot_reliability(png, curves, title=f"{name} on PublicTest (validation, n={len(val)}, one pass)")
    flip = {k: expected_calibration_error(c.predict_proba(val.images, tta="flip"), val.labels)
            for k, c in (("raw", raw), ("calibrated", clf))}
    m = cal.metrics
    rows = []
    for label, is_raw in (("raw network (`--raw`)", True), (f"as shipped: {cal.steps()} (in sample)", False)):
        one = evaluate(name, data, ferplus=ferplus, split="PublicTest", tta="none", raw=is_raw)
        two = evaluate(name, data, ferplus=ferplus, split="PublicTest", tta="flip", raw=is_raw)
        outside = (f"{two.accuracy:.2%} / {one.accuracy:.2%} (nothing fitted)" if is_raw else
                   f"{m['flip_accuracy_out_of_sample']:.2%} / {m['accuracy_out_of_sample']:.2%}")
        recall = ", ".join(f"{c} {one.per_class[c]['recall']:.0%} / {two.per_class[c]['recall']:.0%}" for c in clf.classes)
        rows.append(f"| {label} | {one.accuracy:.2%} | {two.accuracy:.2%} | {outside} | {one.macro_f1:.3f} / "
                    f"{two.macro_f1:.3f} | {recall} |")
    if "recall_out_of_sample" in m:   # what the shipped steps give each class on faces they were not fitted on
        one, two = m["recall_out_of_sample"], m.get("flip_recall_out_of_sample", {})
        recall = ", ".join(f"{c} {_percent(one.get(c))} / {_percent(two.get(c))}" for c in clf.classes)
        rows.append(f"| as shipped, its calibration out of sample (cross-fitted halves) | {m['accuracy_out_of_sample']:.2%} | "
                    f"{m.get('flip_accuracy_out_of_sample', float('nan')):.2%} | (this row) | {m['macro_f1_out_of_sample']:.3f} / "
                    f"{m.get('flip_macro_f1_out_of_sample', float('nan')):.3f} | {recall} |")
    scale = ", ".join(f"{c} {s:.2f}" for c, s in zip(clf.classes, cal.scale)) if cal.scale else "none"
    if any(cal.strength):
        strengths = ", ".join(f"{c} {t:+.1f}" for c, t in zip(clf.classes, cal.strength))
        op = (f"bias = -tau x log(training prior), tau per class chosen to maximise "
              f"{cal.objective.replace('_', ' ')} within the validation-accuracy budget: {strengths}")
    else:
        op = "none: the per-class operating point failed the ship rule out of sample (table below), so it is not shipped"
    votes = f" --ferplus {ferplus}" if ferplus else ""
    return f"""## Calibration and operating point

The spec stores a calibration that every probability emolens gives out goes through (Python API,
`predict`, `video`, `webcam`, `serve`, `evaluate`; ONNX Runtime and torch alike):
`softmax((logits x scale + bias) / T)`, fitted on PublicTest (the validation split, one pass) by
`emolens calibrate --model {name} --data {data}{votes}{' ' + fit_options.strip() if fit_options.strip() else ''}`. `--raw` (CLI) or `raw=True` (Python) gives the network's
own softmax back. Shipped: **{cal.steps()}**.

- vector scaling (one factor per class, negative log-likelihood): {scale}
- operating point: {op}
- temperature {cal.temperature:.3f} (lowest ECE)
- expected calibration error (15 bins), PublicTest one pass: **{cal.ece_before:.3f} raw -> {cal.ece_after:.3f}
  calibrated** in sample; out of sample (fitted on one half of PublicTest, measured on the other):
  {cal.ece_cross_fitted:.3f}; with flip TTA: {flip['raw']:.3f} raw -> {flip['calibrated']:.3f}

**Judged out of sample** (issue 24): a step fitted and scored on the same {len(val):,} faces overstates
itself, so `calibrate` also fits each step on one of two fixed stratified halves of PublicTest
(seed 24) and scores it on the other, both ways, pooled over the whole split ("out of sample");
also without the PublicTest faces that have a Training twin (pHash within 4 bits,
{oos_twins(cal)} faces here). A step ships only if, out of sample, it wins on accuracy or macro-F1 and
loses no more than 0.3 points of the other, each step against the last one that shipped, both in one
pass (what the recognition pipeline runs) and with flip TTA (what `evaluate` runs):

{judged_table(cal)}

| PublicTest (validation; it chose the calibration) | accuracy, one pass | accuracy, flip TTA (`evaluate`'s default) | out of sample, flip / one pass | macro-F1, one pass / flip | recall per class, one pass / flip |
|---|---|---|---|---|---|
{chr(10).join(rows)}

![reliability diagram](../../../docs/models/{png.name})
"""


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def oos_twins(cal: Calibration) -> str:
    import re

    found = re.search(r"(\d+) faces with a Training twin", cal.out_of_sample.get("protocol", ""))
    return found.group(1) if found else "?"


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
    p.add_argument("--fit-options", default="", help="the calibrate options the spec was fitted with, for the card's "
                   "command (e.g. ' --min-accuracy 0.70 --max-accuracy-drop 0.01')")
    a = p.parse_args()
    card = bundled_path(a.name).with_suffix(".md")
    text = card.read_text()
    block = f"{START}\n{calibration_section(a.name, a.data, a.ferplus, a.fit_options)}\n{beyond_section(a.name, a.ood)}{END}\n"
    if START in text:
        head, rest = text.split(START, 1)
        text = head + block + "\n" + rest.split(END, 1)[1].lstrip("\n")
    else:
        head, tail = text.split("## Training", 1)
        text = head + block + "\n## Training" + tail
    card.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
