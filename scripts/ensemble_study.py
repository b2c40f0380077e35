"""The ensemble study (issue 24, docs/experiments/ensembles.md): each member alone, then the soft vote
as members are added in the order given, with equal weights and with weights fitted out of sample.

    python scripts/ensemble_study.py fer2013-ensemble --data ../shared/data/fer2013/fer2013.csv.gz \
        --ood ../shared/data/ood-dev --member fer2013 --member members/fer2013_se_resnet.safetensors ... \
        --out docs/experiments/ensembles_fer2013.md --plot docs/images/ensembles_fer2013.png

Per member: PublicTest (validation) accuracy one pass and with flip TTA, macro-F1 (flip), CK+ dev
7-way (argmax over the seven FER-2013 classes, contempt rows left out, flip) and JAFFE dev through the
whole pipeline (detect, align, classify; one pass). Per ensemble of the first k members (one pass,
the members' raw probabilities, as the packed soft vote sees them): equal weights (nothing fitted,
so PublicTest judges it fairly), weights tuned on all of PublicTest (in sample, optimistic) and the
same tuning cross-fitted on two fixed stratified halves (out of sample), each also without the
PublicTest faces that have a Training twin; and the ship rule's verdict on the tuned weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emolens.evaluation.ensemble import tune_ensemble
from emolens.evaluation.evaluate import evaluate
from operating_point_study import ood_metrics     # CK+ dev 7-way (flip) and JAFFE dev (pipeline), one owner


def member_row(model: str, data: str, ferplus: str | None, ood: Path | None) -> dict:
    one = evaluate(model, data, ferplus=ferplus, split="PublicTest", tta="none")
    flip = evaluate(model, data, ferplus=ferplus, split="PublicTest", tta="flip")
    row = {"model": model, "acc1": one.accuracy, "acc_flip": flip.accuracy, "f1_flip": flip.macro_f1}
    if ferplus:
        row["contempt_flip"] = flip.per_class.get("contempt", {}).get("recall", float("nan"))
    if ood is not None:
        ood_row = ood_metrics(model, ood)
        row["ck"], row["jaffe"] = ood_row["ck"], ood_row["jaffe"]
    return row


def ensemble_row(models: list[str], data: str, ferplus: str | None, objective: str) -> dict:
    spec, res = tune_ensemble(models, data, ferplus=ferplus, split="PublicTest", objective=objective)
    return {"k": len(models), "equal": res["uniform"].accuracy, "equal_f1": res["uniform"].macro_f1,
            "tuned_in": res["tuned"].accuracy, "tuned_out": res["tuned_out_of_sample"].accuracy,
            "tuned_out_f1": res["tuned_out_of_sample"].macro_f1, "weights": spec.tuned["weights"],
            "member_raw": [m.accuracy for m in res["members"]], "ships": res["decision"].ships, "reason": res["decision"].reason, "summary": res["summary"]}


def pct(x: float) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f}%"


def markdown(name: str, members: list[dict], ensembles: list[dict]) -> str:
    ferplus = "contempt_flip" in members[0]
    head = ("| member | PublicTest one pass | flip | macro-F1, flip |" + (" contempt recall, flip |" if ferplus else "")
            + " CK+ dev 7-way, flip | JAFFE dev, pipeline |")
    lines = [f"### {name}: members (PublicTest is the validation split)", "", head,
             "|" + " --- |" * (head.count("|") - 1)]
    for m in members:
        lines.append(f"| `{m['model']}` | {pct(m['acc1'])} | {pct(m['acc_flip'])} | {m['f1_flip']:.3f} |"
                     + (f" {pct(m['contempt_flip'])} |" if ferplus else "")
                     + f" {pct(m.get('ck'))} | {pct(m.get('jaffe'))} |")
    lines += ["", f"### {name}: the soft vote as members are added (one pass)", "",
              "| members | equal weights | tuned, in sample | tuned, out of sample | macro-F1 equal / tuned out of sample | tuned weights ship? |",
              "| --- | --- | --- | --- | --- | --- |"]
    for e in ensembles:
        lines.append(f"| first {e['k']} | {pct(e['equal'])} | {pct(e['tuned_in'])} | {pct(e['tuned_out'])} | "
                     f"{e['equal_f1']:.3f} / {e['tuned_out_f1']:.3f} | {'yes' if e['ships'] else 'no'} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, name: str, members: list[dict], ensembles: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the soft vote averages the members' raw probabilities: the curve starts at the first member's raw
    # accuracy, and the line below it is the best raw member so far
    raw = ensembles[-1]["member_raw"]
    ks = [1] + [e["k"] for e in ensembles]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(ks, [100 * raw[0]] + [100 * e["equal"] for e in ensembles], "o-", label="equal weights")
    ax.plot(ks, [100 * raw[0]] + [100 * e["tuned_out"] for e in ensembles], "s--",
            label="tuned weights, out of sample")
    ax.plot(ks, [100 * max(raw[:k]) for k in ks], ":", color="grey", label="best member so far (raw)")
    ax.set_xticks(ks)
    ax.set_xlabel("members (in the order of the study table)")
    ax.set_ylabel("PublicTest accuracy, one pass (%)")
    ax.set_title(f"{name}: accuracy as members are added")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the ensemble's name, for titles")
    p.add_argument("--data", required=True)
    p.add_argument("--ferplus", default=None, help="FER+ votes: the 8-class FER+ majority labels")
    p.add_argument("--ood", type=Path, default=None, help="the ood-dev folder (CK+ and JAFFE dev halves)")
    p.add_argument("--member", action="append", required=True, metavar="MODEL", help="in the order they are added")
    p.add_argument("--objective", default="nll", choices=["nll", "accuracy"])
    p.add_argument("--out", type=Path, help="write the markdown tables here")
    p.add_argument("--plot", type=Path, help="write the accuracy-as-members-are-added plot here")
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--replot", type=Path, help="only draw --plot again from this --json file")
    a = p.parse_args()
    if a.replot:
        saved = json.loads(a.replot.read_text())
        plot(a.plot, a.name, saved["members"], saved["ensembles"])
        return
    members = [member_row(m, a.data, a.ferplus, a.ood) for m in a.member]
    ensembles = [ensemble_row(a.member[:k], a.data, a.ferplus, a.objective) for k in range(2, len(a.member) + 1)]
    for e in ensembles:
        print(e["summary"], "\n")
    text = markdown(a.name, members, ensembles)
    print(text)
    if a.out:
        a.out.write_text(text)
    if a.plot:
        plot(a.plot, a.name, members, ensembles)
    if a.json:
        a.json.write_text(json.dumps({"members": members, "ensembles": ensembles}, indent=1,
                                     default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))


if __name__ == "__main__":
    main()
