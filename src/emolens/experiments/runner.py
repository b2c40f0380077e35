"""Run a list of training runs and ensembles from one YAML file and tabulate them.

An experiment file::

    name: balancing
    title: Compact CNN with class balancing on FER-2013
    description: One paragraph that goes above the table.
    out: runs/experiments/balancing          # run folders (default runs/experiments/NAME)
    table: docs/experiments/balancing.md     # the markdown table (default OUT/results.md)
    base: ../fer2013_default.yaml            # a train config file (relative to this file) or a mapping
    set: {model: compact_cnn, epochs: 30}    # train config keys over the base, for every run
                                             # (and model_label / method / data_label texts)
    grid:                                    # every combination becomes a run
      balance: [none, oversample, smote, adasyn, class_weights]
    runs:                                    # and/or runs listed one by one
      - {label: vgg-adv, model: vgg_fer, adversarial_multiplier: 0.3}
      - {label: vote, kind: ensemble, members: [vgg-adv, compact_cnn-none]}
    schedule:                                # a shorter schedule for every run (or from the CLI)
      epochs: 2
      limit_train_batches: 20
      max_train_rows: 3000                   # stratified subset of the training split
      max_val_rows: 1000                     # stratified subset of the validation split

A run's keys replace the base's (``model_options`` whole; ``augment`` key by key). A grid value
that is a mapping sets several keys at once (``backbone: [{model: resnet50,
pretrained: hub}, ...]``). A run's extra keys: ``label`` (its folder), ``model_label``,
``method`` and ``data_label`` (the table's text), for ``kind: ensemble``: ``members`` (labels
of earlier runs) and ``objective`` (``nll`` or ``accuracy``), and for ``kind: average`` (one network
whose weights are the mean of earlier runs', batch-norm statistics measured again on the training
split; ``emolens average``): ``members``, optionally ``weights`` (one per member) and ``last_epochs: N``
(average each member's last N epoch checkpoints, which the member kept with ``keep_epochs``, instead of
its exported model).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.card import hardware
from ..errors import EmolensError

EXTRA_KEYS = ("label", "model_label", "method", "data_label", "kind", "members", "objective", "weights",
              "last_epochs")
SCHEDULE_KEYS = ("epochs", "limit_train_batches", "max_train_rows", "max_val_rows", "note")


@dataclass
class Schedule:
    epochs: int | None = None
    limit_train_batches: int | float | None = None
    max_train_rows: int | None = None
    max_val_rows: int | None = None
    note: str = ""

    @property
    def shortened(self) -> bool:
        return any(v is not None for v in (self.epochs, self.limit_train_batches, self.max_train_rows,
                                           self.max_val_rows))

    def describe(self) -> str:
        parts = []
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch(s) per run")
        if self.limit_train_batches is not None:
            parts.append(f"at most {self.limit_train_batches} training batches per epoch")
        if self.max_train_rows is not None:
            parts.append(f"a stratified subset of at most {self.max_train_rows} training rows")
        if self.max_val_rows is not None:
            parts.append(f"a stratified subset of at most {self.max_val_rows} validation rows")
        return "; ".join(parts)


@dataclass
class RunSpec:
    label: str
    kind: str = "train"
    config: dict = field(default_factory=dict)
    model_label: str = ""
    method: str = ""
    data_label: str = ""
    members: list[str] = field(default_factory=list)
    objective: str = "nll"
    weights: list[float] | None = None
    last_epochs: int = 0


@dataclass
class RunResult:
    label: str
    model: str
    method: str
    data: str
    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float = 0.0
    epochs: int = 0
    n_val: int = 0
    run_dir: str = ""
    weights: str = ""
    status: str = "ok"


@dataclass
class Experiment:
    name: str
    title: str
    description: str
    out: Path
    table: Path
    runs: list[RunSpec]
    schedule: Schedule
    source: str = ""


# ------------------------------------------------------------------------------------ loading


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; ``augment`` merges key by key, any other mapping (``model_options``:
    they belong to one model) is replaced whole."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key == "augment" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(text)).strip("-") or "run"


def _value_text(value) -> str:
    if isinstance(value, dict):
        return str(value.get("label") or value.get("model") or "-".join(_value_text(v) for v in value.values()))
    return str(value)


def load_experiment(path: str | Path, schedule_overrides: dict | None = None) -> Experiment:
    """Read and check an experiment file; ``schedule_overrides`` (from the CLI) win over its schedule."""
    from ..engine.config import TrainConfig, read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, "experiment")
    known = {"name", "title", "description", "out", "table", "base", "set", "grid", "runs", "schedule"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EmolensError(f"{path}: unknown experiment key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    name = str(raw.get("name") or path.name.split(".")[0])

    base = raw.get("base") or {}
    if isinstance(base, str):
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        base = TrainConfig.load(base_path).to_dict()
    elif not isinstance(base, dict):
        raise EmolensError(f"{path}: base must be a train config path or a mapping")
    base = _merge(TrainConfig().to_dict(), base)
    over = dict(raw.get("set") or {})
    shared_text = {k: over.pop(k) for k in ("model_label", "method", "data_label") if k in over}
    base = _merge(base, over)

    specs: list[RunSpec] = []
    grid = raw.get("grid") or {}
    if grid:
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise EmolensError(f"{path}: grid must map keys to non-empty lists")
        axes = list(grid)
        for combo in itertools.product(*(grid[a] for a in axes)):
            entry: dict = {}
            for axis, value in zip(axes, combo):  # a mapping's own label only names the run
                entry.update({k: v for k, v in value.items() if k != "label"} if isinstance(value, dict)
                             else {axis: value})
            entry["label"] = "-".join(_value_text(v) for v in combo)
            specs.append(_run_spec({**shared_text, **entry}, base, path))
    for entry in raw.get("runs") or []:
        if not isinstance(entry, dict):
            raise EmolensError(f"{path}: each run must be a mapping, got {entry!r}")
        specs.append(_run_spec({**shared_text, **entry}, base, path))
    if not specs:
        raise EmolensError(f"{path}: no runs (give grid: or runs:)")
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise EmolensError(f"{path}: run labels must be unique; repeated: {', '.join(dupes)}")
    for s in specs:
        if s.kind in ("ensemble", "average"):
            earlier = labels[:labels.index(s.label)]
            missing = [m for m in s.members if m not in earlier]
            if len(s.members) < 2 or missing:
                raise EmolensError(f"{path}: {s.kind} {s.label} needs at least two members among the runs "
                                   f"listed before it; not found: {', '.join(missing) or '(fewer than two)'}")
            if s.weights is not None and len(s.weights) != len(s.members):
                raise EmolensError(f"{path}: {s.kind} {s.label} has {len(s.weights)} weights for "
                                   f"{len(s.members)} members")

    sched_raw = dict(raw.get("schedule") or {})
    bad = sorted(set(sched_raw) - set(SCHEDULE_KEYS))
    if bad:
        raise EmolensError(f"{path}: unknown schedule key(s) {', '.join(bad)}; known: {', '.join(SCHEDULE_KEYS)}")
    sched_raw.update({k: v for k, v in (schedule_overrides or {}).items() if v is not None})
    schedule = Schedule(**sched_raw)
    out = Path(raw.get("out") or Path("runs") / "experiments" / name)
    table = Path(raw.get("table") or out / "results.md")
    return Experiment(name=name, title=str(raw.get("title") or name), description=str(raw.get("description") or ""),
                      out=out, table=table, runs=specs, schedule=schedule, source=str(path))


def _run_spec(entry: dict, base: dict, path: Path) -> RunSpec:
    from ..engine.config import TrainConfig

    extras = {k: entry[k] for k in EXTRA_KEYS if k in entry}
    keys = {k: v for k, v in entry.items() if k not in EXTRA_KEYS}
    kind = extras.get("kind", "train")
    if kind not in ("train", "ensemble", "average"):
        raise EmolensError(f"{path}: run kind must be train, ensemble or average, got {kind!r}")
    if "model" in keys and keys["model"] != base.get("model") and "model_options" not in keys:
        keys["model_options"] = {}  # the base's options belong to the base's model
    cfg = _merge(base, keys)
    if isinstance(cfg.get("data"), str):
        cfg["data"] = [cfg["data"]]
    if kind == "train":
        try:
            TrainConfig.from_dict(cfg)  # unknown keys are reported now, not after an hour of training
        except EmolensError as e:
            raise EmolensError(f"{path}: run {extras.get('label', '?')}: {e}") from None
    label = _slug(extras.get("label") or cfg.get("model", "run"))
    return RunSpec(label=label, kind=kind, config=cfg, model_label=str(extras.get("model_label", "")),
                   method=str(extras.get("method", "")), data_label=str(extras.get("data_label", "")),
                   members=[_slug(m) for m in extras.get("members", [])], objective=str(extras.get("objective", "nll")),
                   weights=[float(w) for w in extras["weights"]] if extras.get("weights") else None,
                   last_epochs=_last_epochs(extras, kind, path))


def _last_epochs(extras: dict, kind: str, path: Path) -> int:
    value = extras.get("last_epochs", 0)
    if value and kind != "average":
        raise EmolensError(f"{path}: run {extras.get('label', '?')}: last_epochs belongs to kind: average rows")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EmolensError(f"{path}: run {extras.get('label', '?')}: last_epochs must be a whole number of "
                           f"epochs (0 or more), not {value!r}")
    return value


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


# ----------------------------------------------------------------------------------- data subsets


def _stratified(labels: np.ndarray, n_max: int, seed: int, minimum: int = 2) -> np.ndarray:
    """Row indexes of a subset of at most ``n_max`` rows keeping the class proportions (each class
    keeps at least ``minimum`` rows where it has them, so SMOTE/ADASYN still work)."""
    if len(labels) <= n_max:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(np.minimum(counts, minimum), np.floor(counts * n_max / len(labels)).astype(int))
    keep = [rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(keep))


def make_subset(cfg: dict, schedule: Schedule, folder: Path) -> tuple[dict, str]:
    """Write stratified subsets of the train and validation splits as an image folder and point the
    config at it; returns the new config keys and the table's note on the data."""
    from PIL import Image

    from ..data import load_dataset

    key = hashlib.sha256(json.dumps([cfg.get("data"), cfg.get("ferplus"), cfg.get("classes"), cfg.get("train_split"),
                                     cfg.get("val_split"), schedule.max_train_rows, schedule.max_val_rows,
                                     cfg.get("seed", 0)], default=str).encode()).hexdigest()[:12]
    root = folder / f"subset-{key}"
    info_file = root / "subset.json"
    if not info_file.exists():
        ds = load_dataset(cfg["data"], ferplus=cfg.get("ferplus"), classes=cfg.get("classes"))
        parts = {}
        for role, limit in (("train", schedule.max_train_rows), ("val", schedule.max_val_rows)):
            split = ds.resolve_split(cfg.get(f"{role}_split"), role)
            part = ds.split(split, role)
            idx = _stratified(part.labels, limit, int(cfg.get("seed", 0))) if limit else np.arange(len(part))
            parts[role] = (split, part.select(idx), len(part))
        tmp = root.with_name(root.name + ".tmp")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        for role, (split, part, _) in parts.items():
            for i, (img, lab) in enumerate(zip(part.images, part.labels)):
                d = tmp / split / part.class_names[lab]
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(d / f"{i:06d}.png")
        info = {"classes": list(ds.class_names),
                **{role: {"split": split, "rows": len(part), "of": total} for role, (split, part, total) in parts.items()}}
        (tmp / "subset.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    info = json.loads(info_file.read_text())
    new = {"data": [str(root)], "ferplus": None, "classes": ",".join(info["classes"]),
           "train_split": info["train"]["split"], "val_split": info["val"]["split"]}
    note = (f"{info['train']['rows']} of {info['train']['of']} {info['train']['split']} rows, "
            f"{info['val']['rows']} of {info['val']['of']} {info['val']['split']} rows (stratified)")
    return new, note


# ----------------------------------------------------------------------------------------- running


def _train_config(spec: RunSpec, exp: Experiment, threads: int | None) -> tuple[dict, str]:
    cfg = copy.deepcopy(spec.config)
    sched = exp.schedule
    note = ""
    if sched.epochs is not None:
        cfg["epochs"] = int(sched.epochs)
        if cfg.get("freeze_epochs", 0) >= cfg["epochs"]:
            cfg["freeze_epochs"] = cfg["epochs"] // 2  # keep a fine-tuning phase in a shortened schedule
    if sched.limit_train_batches is not None:
        cfg["limit_train_batches"] = sched.limit_train_batches
    if sched.max_train_rows or sched.max_val_rows:
        new, note = make_subset(cfg, sched, exp.out / "_data")
        if cfg.get("ferplus"):
            note += "; hard labels only"
        cfg.update(new)
    if threads:
        cfg["threads"] = threads
    cfg["out"] = str(exp.out)
    cfg["name"] = spec.label
    return cfg, note


def _finished(run_dir: Path) -> dict | None:
    metrics = run_dir / "metrics.json"
    if not metrics.exists() or not list((run_dir / "model").glob("*.safetensors")):
        return None
    try:
        return json.loads(metrics.read_text())
    except ValueError:
        return None


def _run_train(spec: RunSpec, exp: Experiment, threads: int | None, rerun: bool, progress: bool,
               log) -> RunResult:
    from ..engine.config import TrainConfig
    from ..engine.train import train

    cfg_dict, subset_note = _train_config(spec, exp, threads)
    data = spec.data_label or data_text(spec.config) + (f"; {subset_note}" if subset_note else "")
    result = RunResult(spec.label, model_text(spec), method_text(spec), data)
    cfg = TrainConfig.from_dict(cfg_dict)
    run_dir = cfg.run_dir
    result.run_dir = str(run_dir)
    if rerun and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    done = _finished(run_dir)
    if done is None:
        resume = (run_dir / "checkpoints" / "last.ckpt").exists()
        log(f"[{spec.label}] training {cfg.model} ({'resuming' if resume else 'new run'}) -> {run_dir}")
        train(cfg, resume=resume, progress=progress)
        done = _finished(run_dir)
        if done is None:
            raise EmolensError(f"run {spec.label} finished without metrics")
    else:
        log(f"[{spec.label}] already done, reading {run_dir / 'metrics.json'}")
    result.accuracy, result.macro_f1 = float(done["accuracy"]), float(done["macro_f1"])
    result.seconds = float(done.get("train_seconds", 0.0))
    result.epochs = int(done.get("epochs", 0))
    result.n_val = int(done.get("n", 0))
    result.weights = str(sorted((run_dir / "model").glob("*.safetensors"))[0])
    return result


def _combined_run(spec: RunSpec, exp: Experiment, done: dict[str, RunResult], specs: dict[str, RunSpec],
                  threads: int | None) -> tuple[list[RunResult], dict, RunResult, Path]:
    """An ensemble's or average's finished members, the first member's train config, its result row and folder."""
    members = [done[m] for m in spec.members]
    failed = [m.label for m in members if m.status != "ok"]
    if failed:
        raise EmolensError(f"member run(s) {', '.join(failed)} failed")
    first_cfg, _ = _train_config(specs[spec.members[0]], exp, threads)
    result = RunResult(spec.label, model_text(spec), method_text(spec), spec.data_label or members[0].data)
    run_dir = exp.out / spec.label
    result.run_dir = str(run_dir)
    return members, first_cfg, result, run_dir


def _write_report(run_dir: Path, label: str, metrics, report: str | None = None) -> None:
    metrics.write_json(run_dir / "metrics.json")
    (run_dir / "report.txt").write_text(metrics.report if report is None else report)
    metrics.plot_confusion(run_dir / "confusion_matrix.png",
                           f"{label}: accuracy {metrics.accuracy:.2%}, macro-F1 {metrics.macro_f1:.3f}")


def _run_ensemble(spec: RunSpec, exp: Experiment, done: dict[str, RunResult], specs: dict[str, RunSpec],
                  threads: int | None, log) -> RunResult:
    from ..models.ensemble import tune_ensemble

    members, first_cfg, result, run_dir = _combined_run(spec, exp, done, specs, threads)
    log(f"[{spec.label}] tuning soft-vote weights of {', '.join(spec.members)}")
    start = time.time()
    ens, metrics = tune_ensemble([m.weights for m in members], first_cfg["data"], ferplus=first_cfg.get("ferplus"),
                                 classes=first_cfg.get("classes"), split=first_cfg.get("val_split"),
                                 objective=spec.objective, name=spec.label,
                                 out=run_dir / f"{spec.label}.ensemble.yaml", threads=threads)
    tuned = metrics["tuned"]
    tuned.extra = {"split": ens.tuned.get("split"), "weights": ens.tuned.get("weights")}
    _write_report(run_dir, spec.label, tuned, report=metrics["summary"] + "\n\n" + tuned.report)
    result.accuracy, result.macro_f1, result.n_val = tuned.accuracy, tuned.macro_f1, tuned.n
    result.seconds = sum(m.seconds for m in members) + (time.time() - start)
    result.weights = str(run_dir / f"{spec.label}.ensemble.yaml")
    return result


def _average_inputs(spec: RunSpec, members: list[RunResult]) -> tuple[list[str], list[float] | None]:
    """The files an average row averages, with their weights: each member's exported model, or with
    ``last_epochs`` its last N kept epoch checkpoints (each carrying the member's weight)."""
    from ..engine.callbacks import kept_epoch_checkpoints

    if not spec.last_epochs:
        return [m.weights for m in members], spec.weights
    paths, weights = [], []
    for i, m in enumerate(members):
        kept = kept_epoch_checkpoints(m.run_dir)
        if len(kept) < spec.last_epochs:
            raise EmolensError(f"average {spec.label}: run {m.label} kept {len(kept)} epoch checkpoint(s) in "
                               f"{Path(m.run_dir) / 'checkpoints'}, fewer than last_epochs={spec.last_epochs}; "
                               f"train it with keep_epochs: {spec.last_epochs}")
        paths += [str(p) for p in kept[-spec.last_epochs:]]
        weights += [spec.weights[i] if spec.weights else 1.0] * spec.last_epochs
    return paths, weights


def _run_average(spec: RunSpec, exp: Experiment, done: dict[str, RunResult], specs: dict[str, RunSpec],
                 threads: int | None, log) -> RunResult:
    """One network whose weights are the mean of the members' (``emolens average``), measured on validation."""
    from ..data import load_dataset
    from ..engine.average import average_command, average_models, write_record
    from ..evaluation.predict import predicted_metrics
    from ..models.weights import save_model

    members, cfg, result, run_dir = _combined_run(spec, exp, done, specs, threads)
    weights = run_dir / f"{spec.label}.safetensors"
    result.weights = str(weights)
    if weights.exists() and (run_dir / "metrics.json").exists():
        log(f"[{spec.label}] already done, reading {run_dir / 'metrics.json'}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        result.accuracy, result.macro_f1, result.n_val = metrics["accuracy"], metrics["macro_f1"], metrics["n"]
    else:
        log(f"[{spec.label}] averaging the weights of {', '.join(spec.members)}")
        ds = load_dataset(cfg["data"], ferplus=cfg.get("ferplus"), classes=cfg.get("classes"))
        train_split = ds.resolve_split(cfg.get("train_split"), "train")
        faces = ds.split(train_split).images
        paths, member_weights = _average_inputs(spec, members)
        model, model_spec = average_models(paths, member_weights, faces, name=spec.label)
        save_model(model, model_spec, weights)
        write_record(weights, paths, member_weights, cfg["data"], train_split, len(faces),
                     average_command(paths, weights, member_weights, cfg["data"], train_split))
        val = ds.split(cfg.get("val_split"), "test")
        m = predicted_metrics(model, model_spec.preprocess, val.images, val.labels, list(model_spec.classes))
        m.extra = {"split": val.split_names[0] if len(val) else None, "members": spec.members}
        _write_report(run_dir, spec.label, m)
        result.accuracy, result.macro_f1, result.n_val = m.accuracy, m.macro_f1, m.n
    result.seconds = sum(m.seconds for m in members)
    return result


def run_experiment(exp: Experiment, threads: int | None = None, only: list[str] | None = None, rerun: bool = False,
                   progress: bool = False, command: str = "", log=print) -> list[RunResult]:
    """Train every run (skipping finished ones, resuming interrupted ones), then write the table."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    exp.out.mkdir(parents=True, exist_ok=True)
    specs = {s.label: s for s in exp.runs}
    wanted = set(only or specs)
    for s in exp.runs:  # an ensemble asked for brings its members along
        if s.label in wanted and s.kind in ("ensemble", "average"):
            wanted.update(s.members)
    unknown = sorted(set(only or []) - set(specs))
    if unknown:
        raise EmolensError(f"--only: no run labelled {', '.join(unknown)}; runs: {', '.join(specs)}")
    results: dict[str, RunResult] = {}
    for spec in exp.runs:
        if spec.label not in wanted:
            continue
        try:
            if spec.kind == "ensemble":
                res = _run_ensemble(spec, exp, results, specs, threads, log)
            elif spec.kind == "average":
                res = _run_average(spec, exp, results, specs, threads, log)
            else:
                res = _run_train(spec, exp, threads, rerun, progress, log)
        except (EmolensError, RuntimeError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log(f"[{spec.label}] FAILED: {first}")
            res = RunResult(spec.label, model_text(spec), method_text(spec),
                            spec.data_label or data_text(spec.config), status=f"failed: {first[:160]}")
        results[spec.label] = res
        if res.status == "ok":
            log(f"[{spec.label}] validation accuracy {res.accuracy:.4f}, macro-F1 {res.macro_f1:.4f}, "
                f"{format_seconds(res.seconds)}")
    ordered = [results[s.label] for s in exp.runs if s.label in results]
    write_results(exp, ordered, threads=threads, command=command)
    return ordered


# ------------------------------------------------------------------------------------------ output


def render_table(exp: Experiment, results: list[RunResult], threads: int | None = None, command: str = "") -> str:
    import datetime

    from .. import __version__

    lines = [f"# {exp.title}", ""]
    if exp.description:
        lines += [exp.description.strip(), ""]
    if exp.schedule.shortened:
        lines += [f"**Shortened schedule** (not the full training of the configs): {exp.schedule.describe()}."
                  + (f" {exp.schedule.note}" if exp.schedule.note else ""), ""]
    lines += ["| model | method | data | validation accuracy | macro-F1 | time |",
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
        lines.append(f"Validation accuracy and macro-F1 on the validation split (n = {', '.join(map(str, n_val))}), "
                     f"{which}. Time: training wall time"
                     + (" (an ensemble: its members' time plus the tuning). Ensemble weights are tuned on the same "
                        "validation split, so their rows are optimistic; judge them on a test split (`emolens "
                        "evaluate --model RUN/NAME.ensemble.yaml --split PrivateTest`)."
                        if any(r.weights.endswith(".ensemble.yaml") for r in ok) else
                        f"; {format_seconds(sum(r.seconds for r in ok))} for the whole table."))
        lines.append("")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Produced by `{command or 'emolens experiment ' + exp.source}` (emolens {__version__}, {when}; "
                 f"{hardware()}; {threads or 'default'} torch thread(s)). Per-run reports (report.txt, "
                 f"metrics.json, confusion_matrix.png, curves.png, the weights) are in `{exp.out}/<run>/`, "
                 "which is not committed.")
    lines.append("")
    return "\n".join(lines)


def write_results(exp: Experiment, results: list[RunResult], threads: int | None = None, command: str = "") -> Path:
    from ..models.weights import atomic_write_bytes

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
