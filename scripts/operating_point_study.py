"""The operating-point study (issue 15): each candidate model, raw and with its fitted calibration and
per-class operating point, on FER+ PublicTest (validation), CK+ dev and JAFFE dev.

    python scripts/operating_point_study.py --data ../shared/data/fer2013 \
        --ferplus ../shared/data/fer2013/fer2013new.csv --ood ../shared/data/ood-dev \
        --candidate "bundled ferplus=ferplus" --candidate "LA loss=runs/la/model/la.safetensors" \
        --work runs/study --out docs/experiments/operating_point_table.md

For every candidate it writes two calibrated copies under --work (temperature only; temperature +
operating point, both fitted on PublicTest one pass) and measures all three variants:
FER+ PublicTest accuracy (one pass and flip TTA), macro-F1, recall of contempt / disgust / fear,
ECE (15 bins, one pass); CK+ dev 7-way (argmax over the seven FER-2013 classes, contempt rows left
out, flip TTA) and JAFFE dev through the full pipeline (detect, align, classify; one pass).
PublicTest chose the calibration and operating point: its numbers are in sample (optimistic).
Beside them, the out-of-sample numbers of the same procedure (issue 24): each step fitted on one of
two fixed stratified halves of PublicTest and scored on the other, pooled over both
(:mod:`emolens.evaluation.calibration_stages`), with flip TTA, also without the PublicTest faces
that have a Training twin; and the ship rule's verdict on each step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from emolens.evaluation.evaluate import evaluate
from emolens.evaluation.calibration import calibrate_model, expected_calibration_error
from emolens.evaluation.calibration_stages import OPERATING_POINT, RAW, SCALED
from emolens.runtime import load_classifier


def fer_metrics(model: str, data, ferplus) -> dict:
    from emolens.data import load_dataset

    one = evaluate(model, data, ferplus=ferplus, split="PublicTest", tta="none")
    flip = evaluate(model, data, ferplus=ferplus, split="PublicTest", tta="flip")
    ds = load_dataset(data, ferplus=ferplus).split("PublicTest")
    clf = load_classifier(model)
    ds = ds.with_classes(tuple(clf.classes))
    ece = expected_calibration_error(clf.predict_proba(ds.images, tta="none"), ds.labels)
    rec = lambda m, c: m.per_class.get(c, {}).get("recall", float("nan"))  # noqa: E731
    return {"acc1": one.accuracy, "acc_flip": flip.accuracy, "f1": one.macro_f1, "f1_flip": flip.macro_f1,
            "contempt": rec(one, "contempt"), "disgust": rec(one, "disgust"), "fear": rec(one, "fear"),
            "neutral_share": one.extra["predicted"].get("neutral", 0) / one.n, "ece": ece}


def ood_metrics(model: str, ood: Path) -> dict:
    ck = evaluate(model, [str(ood / "ckplus48")], classes="fer2013", tta="flip")
    jaffe = evaluate(model, [str(ood / "jaffe")], classes="fer2013", tta="none", detect=True)
    return {"ck": ck.accuracy, "ck_ci": ck.extra["ci95"]["accuracy"],
            "ck_neutral": ck.extra["predicted"].get("neutral", 0) / ck.n,
            "jaffe": jaffe.accuracy, "jaffe_ci": jaffe.extra["ci95"]["accuracy"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--ferplus", required=True)
    p.add_argument("--ood", required=True, type=Path)
    p.add_argument("--candidate", action="append", required=True, metavar="LABEL=MODEL")
    p.add_argument("--work", default="runs/study", type=Path)
    p.add_argument("--out", type=Path, help="append the table rows (markdown) here")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument("--max-accuracy-drop", type=float, default=0.005, help="the operating point's accuracy budget")
    p.add_argument("--objective", default="balanced_accuracy", help="what the operating point maximises")
    a = p.parse_args()
    rows, records = [], {}
    for item in a.candidate:
        label, model = item.split("=", 1)
        slug = "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
        variants = {"raw": model}
        for kind, op in (("T", False), ("T+op", True)):
            out = a.work / f"{slug}_{kind.replace('+', '_')}.safetensors"
            cal, _, report = calibrate_model(model, a.data, ferplus=a.ferplus, operating_point=op, out=out,
                                             max_accuracy_drop=a.max_accuracy_drop, objective=a.objective,
                                             ship_rule=False)
            variants[kind] = str(out)
            records[f"{label} [{kind}] calibration"] = cal.to_dict()
        stage = {st.name: st for st in report.stages}      # the T+op run judged every step
        judged = {"raw": stage[RAW], "T": stage[SCALED], "T+op": stage[OPERATING_POINT]}
        for kind, path in variants.items():
            t0 = time.perf_counter()
            m = {**fer_metrics(path, a.data, a.ferplus), **ood_metrics(path, a.ood)}
            st = judged[kind]
            m["oos"] = st.out_of_sample["flip"].to_dict()
            m["oos_no_twins"] = st.without_twins["flip"].to_dict()
            m["verdict"] = st.decision.reason if st.decision else ""
            records[f"{label} [{kind}]"] = m
            verdict = m["verdict"].split(":")[0] if m["verdict"] else "(reference)"
            row = (f"| {label} | {kind} | {m['acc1']:.2%} | {m['acc_flip']:.2%} | {m['f1']:.3f} | "
                   f"{m['oos']['accuracy']:.2%} / {m['oos']['macro_f1']:.3f} | "
                   f"{m['oos_no_twins']['accuracy']:.2%} / {m['oos_no_twins']['macro_f1']:.3f} | {verdict} | "
                   f"{m['contempt']:.0%} | "
                   f"{m['disgust']:.0%} | {m['fear']:.0%} | {m['ece']:.3f} | {m['ck']:.1%} [{m['ck_ci'][0]:.1%}, "
                   f"{m['ck_ci'][1]:.1%}] | {m['ck_neutral']:.0%} | {m['jaffe']:.1%} |")
            rows.append(row)
            print(row, f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(row + "\n")
            if a.json:
                a.json.write_text(json.dumps(records, indent=1, default=float))


if __name__ == "__main__":
    main()
