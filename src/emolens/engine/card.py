"""Model cards: what a trained model is, how it was made, and how well it does, beside its weights."""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import yaml

from ..models.registry import count_parameters
from ..files import atomic_write_bytes
from ..models.weights import ModelSpec, load_model, save_model, tta_mode
from ..runtime.onnx_model import ship_onnx
from ..text import duration

DATA_TERMS = (
    "FER-2013 (Goodfellow et al. 2013, ICML 2013 Challenges in Representation Learning) and the FER+ labels "
    "(Barsoum et al. 2016, Microsoft, MIT licence). The images are for research use only and are not "
    "redistributed here; only weights trained on them are. Cite both papers when you use these weights."
)


OWN_DATA_TERMS = "those of the data set named above (not recorded by emolens): check them before sharing these weights."


def _is_fer2013(cfg: dict) -> bool:
    return all("fer2013" in str(d).lower() for d in cfg.get("data") or []) and bool(cfg.get("data"))


def _reproduce_line(name: str, cfg: dict, split: str, held_out: bool) -> str:
    """How to measure the card's numbers again; a held-out split (--val-fraction) has no name to evaluate."""
    if _is_fer2013(cfg):
        return ("Reproduce the numbers (`--no-tta` for the one-pass row, `--tta MODE` for the others): `emolens "
                f"evaluate --model {name} --data ../shared/data/fer2013"
                f"{' --ferplus ../shared/data/fer2013/fer2013new.csv' if cfg.get('ferplus') else ''} --split {split}`")
    if held_out:
        return (f"The validation faces are the part `emolens train` held out (--val-fraction {cfg['val_fraction']}, "
                f"--val-seed {cfg.get('val_seed', 0)}); `emolens evaluate` on the whole data set would also count training faces.")
    return (f"Reproduce the numbers: `emolens evaluate --model {name} --data {' '.join(map(str, cfg['data']))} "
            f"--split {split}`")


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} CPU cores, {gpu}"


def onnx_row(spec: ModelSpec, folder: Path) -> str:
    """The card's table row for the shipped ONNX file (the spec's ``onnx`` entry)."""
    path = Path(folder) / spec.onnx["file"]
    return (f"| onnx | `{path.name}` (ONNX opset {spec.onnx['opset']}, {path.stat().st_size / 1e6:.1f} MB; the raw network, "
            f"the runtime applies TTA and calibration), sha256 `{spec.onnx['sha256']}` |")


def int8_row(spec: ModelSpec, folder: Path) -> str:
    """The card's table row for the shipped INT8 network (the spec's ``int8`` entry) and its parity."""
    from ..runtime.quantize import parity_holds

    q, path = spec.int8, Path(folder) / spec.int8["file"]
    row = (f"| int8 | `{path.name}` (INT8 ONNX, {path.stat().st_size / 1e6:.1f} MB; {q['method']}; calibrated on "
           f"{q['calibration']}; made from the ONNX file with sha256 `{q['source_sha256'][:12]}...`), sha256 `{q['sha256']}`")
    p = q.get("parity")
    if p:
        row += (f"; parity on {p['split']} (n = {p['n']:,}, calibrated, one pass): argmax agreement {p['agreement']:.2%} "
                f"with the float network, accuracy {p['accuracy_float']:.2%} float, {p['accuracy_int8']:.2%} INT8 "
                f"(flip TTA: agreement {p['flip_agreement']:.2%}, {p['flip_accuracy_float']:.2%} / "
                f"{p['flip_accuracy_int8']:.2%}); "
                + ("parity holds, so `precision auto` (the default) runs it" if parity_holds(q) else
                   "parity does not hold, so `precision auto` runs the float network"))
    return row + " |"


def _confusion_table(metrics: dict) -> str:
    classes = metrics["classes"]
    head = "| true \\ predicted | " + " | ".join(classes) + " | recall |"
    rule = "|---" * (len(classes) + 2) + "|"
    rows = [head, rule]
    for name, row in zip(classes, metrics["confusion_matrix"]):
        recall = metrics["per_class"][name]["recall"]
        rows.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + f" | {recall:.1%} |")
    return "\n".join(rows)


def _per_class_table(metrics: dict) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name in metrics["classes"]:
        m = metrics["per_class"][name]
        rows.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(rows)


def _tta_metrics(model, spec, val) -> dict[str, dict]:
    """Accuracy and F1 on the validation faces with each test-time augmentation the model allows."""
    from ..evaluation.evaluate import evaluate_module

    modes = ["flip", "ten_crop"] if spec.preprocess.model_size < spec.preprocess.input_size else ["flip"]
    out = {}
    for mode in modes:
        m = evaluate_module(model, spec, val, tta=mode)
        out[mode] = {"accuracy": m.accuracy, "macro_f1": m.macro_f1, "weighted_f1": m.weighted_f1}
    return out


def _validation_faces(cfg: dict, split: str):
    from ..data import load_dataset

    return load_dataset(cfg["data"], ferplus=cfg.get("ferplus"), classes=cfg.get("classes")).split(split)


TTA_ROWS = {"flip": "with flip TTA (mean of the face and its mirror image)",
            "ten_crop": "with ten-crop TTA (centre and four corner crops, each with its mirror image)"}


def _metrics_rows(metrics: dict, tta: dict[str, dict], default: str) -> str:
    rows = [f"| one pass (the recognition pipeline's default, for speed) | {metrics['accuracy']:.2%} | "
            f"{metrics['macro_f1']:.3f} | {metrics['weighted_f1']:.3f} |"]
    for mode, m in tta.items():
        mark = "**" if mode == default else ""
        note = "; `emolens evaluate`'s default for this model" if mode == default else f"; `--tta {mode}`"
        rows.append(f"| {TTA_ROWS[mode]}{note} | {mark}{m['accuracy']:.2%}{mark} | {m['macro_f1']:.3f} | "
                    f"{m['weighted_f1']:.3f} |")
    return "\n".join(rows)


def _initial_weights(pretrained) -> str:
    if not pretrained:
        return "random (trained from scratch)"
    from ..weights import bundled_path

    if bundled_path(str(pretrained)) is not None:
        return f"the bundled `{pretrained}` model (`pretrained: {pretrained}`; the output layer's rows carried over by class name, a class it lacks started fresh)"
    return f"`{pretrained}`"


def _logit_adjust_text(cfg: dict) -> str:
    tau = cfg.get("logit_adjust") or 0
    return f", logit-adjusted loss (tau {tau} x log training prior)" if tau else ""


def adversarial_text(cfg: dict) -> str:
    """How a run's adversarial regulariser was set (seed 001's Neural Structured Learning recipe), or ""."""
    from .config import TrainConfig

    multiplier = cfg.get("adversarial_multiplier") or 0
    if not multiplier:
        return ""
    step = cfg.get("adversarial_step", TrainConfig.adversarial_step)
    norm = cfg.get("adversarial_norm", TrainConfig.adversarial_norm)
    return f"NSL adversarial regulariser (multiplier {multiplier}, step {step}, {norm} norm)"


def _teacher_line(cfg: dict) -> str:
    if not cfg.get("teacher"):
        return ""
    return (f"\n- teacher (knowledge distillation): `{cfg['teacher']}`, its {cfg.get('teacher_tta', 'flip')} "
            f"probabilities on the training faces, {cfg.get('soft_label_weight', 0)} of each target")


def bundle(run_dir: str | Path, dest_dir: str | Path, docs_dir: str | Path, name: str, command: str,
           trained_on: str | None = None, notes: str = "", tta: str = "flip", speed: str = "", parts=None,
           version: str = "1") -> Path:
    """Copy a finished run's weights to ``dest_dir/NAME.safetensors`` (+ spec), write the card ``NAME.md``
    there and its pictures (confusion matrix, curves) to ``docs_dir``. ``parts``: the run's training and
    validation faces (:func:`emolens.engine.train.prepare_data`), read again from its config when not given."""
    run_dir, docs = Path(run_dir), Path(docs_dir)
    model, spec = load_model(next((run_dir / "model").glob("*.safetensors")))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    if parts is None:
        from .config import TrainConfig
        from .train import prepare_data

        parts = prepare_data(TrainConfig.from_dict(cfg))
    docs.mkdir(parents=True, exist_ok=True)
    for png in ("confusion_matrix.png", "curves.png"):
        if (run_dir / png).exists() and (run_dir / png).resolve() != (docs / f"{name}-{png}").resolve():
            shutil.copyfile(run_dir / png, docs / f"{name}-{png}")
    exported = ("exported: the last epoch; split `" + metrics['split'] + "` was only reported on, never used to choose"
                if cfg.get('export_checkpoint') == 'last' else
                "model selection (best epoch): split `" + metrics['split'] + "`; nothing else was tuned on it")
    exported += f" (validation: {parts.how})"
    regulariser = f", {nsl}" if (nsl := adversarial_text(cfg)) else ""
    training = f"""- command: `{command}`
- initial weights: {_initial_weights(cfg.get('pretrained'))}{_teacher_line(cfg)}
- epochs: {metrics.get('epochs')} ({cfg['optimizer']}, lr {cfg['lr']}, {cfg['schedule']} schedule, batch {cfg['batch_size']}, label smoothing {cfg['label_smoothing']}, soft-label weight {cfg.get('soft_label_weight', 0)}, balance {cfg['balance']}{_logit_adjust_text(cfg)}{regulariser}, {cfg['precision']})
- augmentation: {', '.join(f'{k} {v}' for k, v in cfg['augment'].items())}
- wall time: {duration(metrics.get('train_seconds', 0))}
- hardware: {trained_on or hardware()}"""
    return _write_card(model, spec, metrics, cfg, parts.val, Path(dest_dir), docs,
                       name, "emolens itself, `emolens train`", exported, training, notes, tta, speed, curves=True,
                       version=version, train_split=parts.train.split_names[0], held_out=parts.held_out)


def _measured_on(data, ferplus: str | None, spec: ModelSpec, split: str):
    """The card's data description and the faces of ``split`` a bundled average or ensemble is measured on."""
    data = [str(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    cfg = {"data": data, "ferplus": ferplus, "classes": list(spec.classes)}
    return cfg, _validation_faces(cfg, split)


def _card_metrics(model, spec: ModelSpec, val, split: str, docs: Path, name: str) -> dict:
    """One-pass metrics of ``model`` on ``val`` into its spec, and its confusion matrix into ``docs``."""
    from ..evaluation.evaluate import evaluate_module

    m = evaluate_module(model, spec, val)
    m.extra["split"] = split
    spec.metrics = {"split": split, "accuracy": m.accuracy, "macro_f1": m.macro_f1, "weighted_f1": m.weighted_f1,
                    "n": m.n}
    docs.mkdir(parents=True, exist_ok=True)
    m.plot_confusion(docs / f"{name}-confusion_matrix.png",
                     f"{name} on {split}: accuracy {m.accuracy:.2%}, macro-F1 {m.macro_f1:.3f}")
    return m.to_dict()


def bundle_average(weights: str | Path, dest_dir: str | Path, docs_dir: str | Path, name: str, data, split: str,
                   ferplus: str | None = None, trained_on: str | None = None, notes: str = "", tta: str = "flip",
                   speed: str = "", selection: str = "", version: str = "1") -> Path:
    """Bundle a model made by ``emolens average`` (its record beside it names the members): measure it on
    ``split`` of ``data``, write its weights, spec and card to ``dest_dir`` and its confusion matrix to ``docs_dir``."""
    from .average import read_record

    record = read_record(weights)
    model, spec = load_model(weights)
    cfg, val = _measured_on(data, ferplus, spec, split)
    metrics = _card_metrics(model, spec, val, split, Path(docs_dir), name)
    docs = Path(docs_dir)
    bn = record.get("batchnorm") or {}
    members = "\n".join(f"  {i}. `{x['model']}` (weight {x['weight']:g}): {x['made']}"
                         for i, x in enumerate(record["members"], 1))
    training = f"""- command: `{record['command']}`
- the weights are the weighted mean of {len(record['members'])} networks of this architecture (a model soup), every one trained by `emolens train` on the Training split:
{members}
- batch-norm statistics: measured again on {bn.get('faces', 0):,} faces of `{bn.get('split')}` ({', '.join(bn.get('data') or []) or 'none'})
- wall time: {duration(record.get('train_seconds', 0))} of training (the members' runs, each counted once), plus minutes for the average
- hardware: {trained_on or hardware()}"""
    exported = selection or f"split `{split}` was only reported on, never used to choose"
    return _write_card(model, spec, metrics, cfg, val, Path(dest_dir), docs, name,
                       "emolens itself: `emolens average` of networks trained by `emolens train`", exported,
                       training, notes, tta, speed, curves=False, version=version)


def bundle_ensemble(spec_path: str | Path, dest_dir: str | Path, docs_dir: str | Path, name: str, data, split: str,
                    ferplus: str | None = None, trained_on: str | None = None, notes: str = "", tta: str = "flip",
                    speed: str = "", selection: str = "", version: str = "1") -> Path:
    """Bundle a soft-vote ensemble (``NAME.ensemble.yaml``, members by bundled name or path) as one model
    ``dest_dir/NAME``: the members packed into one network (weights + ONNX graph), so it is resolved by name,
    calibrated and served like any single model. The card lists each member with its numbers on ``split``."""
    from ..evaluation.evaluate import evaluate_module
    from ..models.ensemble import EnsembleSpec, build_soft_vote, resolve_member

    spec_path = Path(spec_path)
    ens = EnsembleSpec.load(spec_path)
    files = [resolve_member(m.model, spec_path.parent) for m in ens.members]
    loaded = [load_model(f) for f in files]
    model, spec = build_soft_vote(loaded, [m.weight for m in ens.members], name)
    cfg, val = _measured_on(data, ferplus, spec, split)
    rows = ["| # | member | architecture | parameters | weight | one pass | flip TTA |", "|---|---|---|---|---|---|---|"]
    for i, ((net, mspec), member) in enumerate(zip(loaded, ens.members), 1):
        one, flip = evaluate_module(net, mspec, val), evaluate_module(net, mspec, val, tta="flip")
        rows.append(f"| {i} | `{member.model}` ({mspec.name}) | `{mspec.arch}` | {count_parameters(net):,} | "
                    f"{member.weight:.3f} | {one.accuracy:.2%} | {flip.accuracy:.2%} |")
    metrics = _card_metrics(model, spec, val, split, Path(docs_dir), name)
    docs = Path(docs_dir)
    tuned = ens.tuned or {}
    how = (f"weights fitted by `emolens ensemble tune` ({tuned.get('objective', 'nll')}) on {tuned.get('split')}"
           f" (n = {tuned.get('n', '?')})" if tuned else "weights given in the spec")
    training = f"""- a soft vote (weighted mean of the members' softmax) of {len(ens.members)} networks, each trained by `emolens train` (recipes in configs/; the members' own cards in members/); {how}; spec: `{spec_path.name}`
- members, accuracy on {split} (raw networks):

{chr(10).join(rows)}
- hardware: {trained_on or hardware()}"""
    in_sample = tuned.get("split") == split
    exported = selection or (f"split `{split}` chose the member weights: its numbers are in sample (optimistic)"
                             + _weights_out_of_sample(tuned)
                             if in_sample else f"split `{split}` was only reported on, never used to choose")
    return _write_card(model, spec, metrics, cfg, val, Path(dest_dir), docs, name,
                       "emolens itself: a soft vote (`emolens ensemble`) of networks trained by `emolens train`",
                       exported, training, notes, tta, speed, curves=False, version=version)


def _weights_out_of_sample(tuned: dict) -> str:
    """The tuned weights' out-of-sample numbers and the ship rule's verdict, when ``ensemble tune`` stored them."""
    if "accuracy_out_of_sample" not in tuned:
        return ""
    return (f"; tuned on one of two fixed halves and scored on the other, the weights reach "
            f"{tuned['accuracy_out_of_sample']:.2%} (macro-F1 {tuned['macro_f1_out_of_sample']:.3f}) out of sample, "
            f"and {tuned.get('stored', 'tuned')} weights are stored (ship rule: {tuned['reason']})")


def _write_card(model, spec, metrics: dict, cfg: dict, val, dest_dir: Path, docs: Path, name: str, made_by: str,
                exported: str, training: str, notes: str, tta: str, speed: str, curves: bool,
                version: str = "1", train_split: str = "Training", held_out: bool = False) -> Path:
    """Weights + spec (with the TTA views' metrics) and the card ``NAME.md`` in ``dest_dir``."""
    spec.name = name
    spec.version = version
    tta = tta_mode(tta)
    views = _tta_metrics(model, spec, val)
    spec.tta = tta
    spec.metrics = {**spec.metrics, **{f"{mode}_accuracy": m["accuracy"] for mode, m in views.items()},
                    **{f"{mode}_macro_f1": m["macro_f1"] for mode, m in views.items()}}
    weights = save_model(model, spec, dest_dir / f"{name}.safetensors")
    ship_onnx(weights, model, spec)  # the network as ONNX beside the weights: the runtime reads it without torch
    classes = ", ".join(spec.classes)
    rel = os.path.relpath(docs, dest_dir)
    pictures = f"![confusion matrix]({rel}/{name}-confusion_matrix.png)"
    if curves:
        pictures += f"\n![learning curves]({rel}/{name}-curves.png)"
    card = f"""# Model card: `{name}`

| | |
|---|---|
| task | facial expression classification of one aligned grey face crop |
| classes | {len(spec.classes)}: {classes} |
| architecture | `{spec.arch}` {json.dumps(spec.options)} ({count_parameters(model):,} parameters) |
| input | aligned {spec.preprocess.input_size}x{spec.preprocess.input_size} grey face, centre crop {spec.preprocess.model_size}x{spec.preprocess.model_size} (trained on random crops of that side), (x/255 - {spec.preprocess.mean}) / {spec.preprocess.std} |
| weights | `{weights.name}` (safetensors, {weights.stat().st_size / 1e6:.1f} MB), sha256 `{spec.sha256}` |
{onnx_row(spec, dest_dir)}
| trained by | {made_by} |

## Data

- training: `{', '.join(cfg['data'])}`{' with FER+ votes `' + cfg['ferplus'] + '`' if cfg.get('ferplus') else ''}, split `{train_split}`
- {exported}
- licence terms of the data: {DATA_TERMS if _is_fer2013(cfg) else OWN_DATA_TERMS}

## Metrics on {metrics['split']} (n = {metrics['n']:,})

| evaluation | accuracy | macro-F1 | weighted-F1 |
|---|---|---|---|
{_metrics_rows(metrics, views, tta)}

The tables below are for the one-pass predictions.

{_per_class_table(metrics)}

Confusion matrix (rows: true class, columns: predicted):

{_confusion_table(metrics)}

{pictures}

{_reproduce_line(name, cfg, metrics['split'], held_out)}

## Training

{training}
{notes}
"""
    if speed:
        card += f"\n## Speed\n\n{speed.strip()}\n"
    atomic_write_bytes(dest_dir / f"{name}.md", card.encode())
    return weights
