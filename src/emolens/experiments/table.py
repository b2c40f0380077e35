"""An experiment's results as text: the markdown table (with its notes), results.json, and the
dry run's description of each row."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .schema import Experiment, RunResult, RunSpec


# ----------------------------------------------------------------------------------- the table text

BALANCE_TEXT = {"none": "none", "oversample": "random over-sampling", "smote": "SMOTE", "adasyn": "ADASYN",
                "class_weights": "class weights"}


def model_text(spec: RunSpec) -> str:
    if spec.model_label:
        return spec.model_label
    if spec.kind == "ensemble":
        return "ensemble of " + ", ".join(spec.members)
    if spec.kind == "average":
        return "weight average of " + ", ".join(spec.members)
    cfg = spec.config
    opts = cfg.get("model_options") or {}
    extra = [f"{k} {opts[k]}" for k in ("head", "resize", "img_size", "timm_name") if k in opts]
    return cfg["model"] + (f" ({', '.join(extra)})" if extra else "")


def method_text(spec: RunSpec) -> str:
    if spec.method:
        return spec.method
    if spec.kind == "ensemble":
        return f"soft vote, weights tuned on validation ({spec.objective})"
    if spec.kind == "average":
        which = f"the last {spec.last_epochs} epochs' checkpoints of each member" if spec.last_epochs else "the members"
        return f"mean of the weights of {which}, batch-norm statistics measured again on the training split"
    cfg = spec.config
    parts = [BALANCE_TEXT.get(cfg.get("balance", "none"), str(cfg.get("balance")))]
    if cfg.get("pretrained"):
        p = cfg["pretrained"]
        parts.append(f"fine-tuned from {'ImageNet (' + str(p) + ')' if str(p) in ('hub', 'package') else p}")
    if cfg.get("freeze_epochs"):
        parts.append(f"head only for {cfg['freeze_epochs']} epoch(s), then all layers")
    if cfg.get("adversarial_multiplier"):
        parts.append(f"adversarial reg. x{cfg['adversarial_multiplier']}, step {cfg.get('adversarial_step', 0.01)}")
    return ", ".join(parts)


def data_text(cfg: dict) -> str:
    names = []
    for p in cfg.get("data") or []:
        stem = Path(str(p)).name
        for suffix in (".gz", ".csv"):
            stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
        names.append({"fer2013": "FER-2013"}.get(stem.lower(), stem))
    text = " + ".join(names) or "?"
    if cfg.get("ferplus"):
        text += " with FER+ labels"
    if cfg.get("classes"):
        text += f" ({cfg['classes']})"
    return text


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


# ------------------------------------------------------------------------------------------ output


def render_table(exp: Experiment, results: list[RunResult], threads: int | None = None, command: str = "") -> str:
    import datetime

    from ..version import __version__

    lines = [f"# {exp.title}", ""]
    if exp.description:
        lines += [exp.description.strip(), ""]
    if exp.schedule.shortened:
        lines += [f"**Shortened schedule** (not the full training of the configs): {exp.schedule.describe()}."
                  + (f" {exp.schedule.note}" if exp.schedule.note else ""), ""]
    splits = sorted({r.split for r in results if r.status == "ok" and r.split})
    scored_on = f"{' / '.join(splits)} (validation)" if splits else "validation"
    lines += [f"| model | method | data | accuracy on {scored_on} | macro-F1 | time |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
    for r in results:
        if r.status == "ok":
            lines.append(f"| {r.model} | {r.method} | {r.data} | {r.accuracy:.2%} | {r.macro_f1:.4f} | "
                         f"{format_seconds(r.seconds)} |")
        else:
            lines.append(f"| {r.model} | {r.method} | {r.data} | {r.status} | | |")
    lines.append("")
    ok = [r for r in results if r.status == "ok"]
    if ok:
        epochs = sorted({r.epochs for r in ok if r.epochs})
        n_val = sorted({r.n_val for r in ok})
        exported = {s.config.get("export_checkpoint", "best") for s in exp.runs
                    if s.kind == "train" and s.label in {r.label for r in ok}}
        of = f" (of {epochs[0]} epochs)" if len(epochs) == 1 else ""
        which = {frozenset({"last"}): f"at the last epoch{of}, which each run exports",
                 frozenset({"best"}): f"at the epoch with the best validation accuracy{of}"}.get(
                     frozenset(exported), "at the epoch each run exports (its config's export_checkpoint: best or last)")
        lines.append(f"Accuracy and macro-F1 on the validation split {' / '.join(splits) or ''} "
                     f"(n = {', '.join(map(str, n_val))}; every row is scored on it, none on a test split), "
                     f"{which}. Time: training wall time"
                     + (" (an ensemble: its members' time plus the tuning). Ensemble weights are tuned on the same "
                        "validation split, so their rows are optimistic; judge them on a test split (`emolens "
                        "evaluate --model RUN/NAME.ensemble.yaml --split PrivateTest`)."
                        if any(r.weights.endswith(".ensemble.yaml") for r in ok) else
                        f"; {format_seconds(sum(r.seconds for r in ok))} for the whole table."))
        lines.append("")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Produced by `{command or 'emolens experiment ' + exp.source}` (emolens {__version__}, {when}; "
                 f"{_hardware()}; {threads or 'default'} torch thread(s)). Per-run reports (report.txt, "
                 f"metrics.json, confusion_matrix.png, curves.png, the weights) are in `{exp.out}/<run>/`, "
                 "which is not committed.")
    lines.append("")
    return "\n".join(lines)


def write_results(exp: Experiment, results: list[RunResult], threads: int | None = None, command: str = "") -> Path:
    from ..files import atomic_write_bytes

    text = render_table(exp, results, threads, command)
    atomic_write_bytes(exp.table, text.encode())
    payload = {"name": exp.name, "title": exp.title, "schedule": asdict(exp.schedule),
               "runs": [asdict(r) for r in results]}
    atomic_write_bytes(exp.out / "results.json", (json.dumps(payload, indent=2) + "\n").encode())
    return exp.table


def describe_runs(exp: Experiment, threads: int | None = None) -> list[dict[str, Any]]:
    """What each run would train (for --dry-run): label, model, method, data and the changed keys."""
    from ..engine.config import TrainConfig

    default = TrainConfig().to_dict()
    out = []
    for spec in exp.runs:
        row: dict[str, Any] = {"label": spec.label, "kind": spec.kind, "model": model_text(spec),
                               "method": method_text(spec)}
        if spec.kind == "train":
            row["data"] = spec.data_label or data_text(spec.config)
            row["config"] = {k: v for k, v in spec.config.items() if v != default.get(k)}
        else:
            row["members"] = spec.members
        out.append(row)
    return out


def _hardware() -> str:
    from ..engine.card import hardware

    return hardware()
