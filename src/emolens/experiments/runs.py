"""Running an experiment's rows: training runs (skipping finished ones, resuming interrupted
ones), ensembles tuned and weight averages made from earlier rows, each scored on the one
validation split of the experiment's data (never a test split unless a config names it)."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..errors import EmolensError
from ..files import atomic_write_text
from .schema import Experiment, RunResult, RunSpec, Schedule
from .table import data_text, format_seconds, method_text, model_text, write_results


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
    result.split = str(done.get("split") or "")
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
    atomic_write_text(run_dir / "report.txt", metrics.report if report is None else report)
    metrics.plot_confusion(run_dir / "confusion_matrix.png",
                           f"{label}: accuracy {metrics.accuracy:.2%}, macro-F1 {metrics.macro_f1:.3f}")


def _run_ensemble(spec: RunSpec, exp: Experiment, done: dict[str, RunResult], specs: dict[str, RunSpec],
                  threads: int | None, log) -> RunResult:
    from ..evaluation.ensemble import tune_ensemble

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
    result.split = str(ens.tuned.get("split") or "")
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
    from ..engine.average import average
    from ..evaluation.evaluate import evaluate_module

    members, cfg, result, run_dir = _combined_run(spec, exp, done, specs, threads)
    weights = run_dir / f"{spec.label}.safetensors"
    result.weights = str(weights)
    if weights.exists() and (run_dir / "metrics.json").exists():
        log(f"[{spec.label}] already done, reading {run_dir / 'metrics.json'}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        result.accuracy, result.macro_f1, result.n_val = metrics["accuracy"], metrics["macro_f1"], metrics["n"]
        result.split = str(metrics.get("split") or "")
    else:
        log(f"[{spec.label}] averaging the weights of {', '.join(spec.members)}")
        paths, member_weights = _average_inputs(spec, members)
        made = average(paths, weights, member_weights, cfg["data"], cfg.get("train_split"),
                       ferplus=cfg.get("ferplus"), classes=cfg.get("classes"))
        ds = load_dataset(cfg["data"], ferplus=cfg.get("ferplus"), classes=cfg.get("classes"))
        val = ds.split(cfg.get("val_split"), "val")   # the validation split every row kind scores on
        m = evaluate_module(made.model, made.spec, val)
        m.extra["members"] = spec.members
        _write_report(run_dir, spec.label, m)
        result.accuracy, result.macro_f1, result.n_val = m.accuracy, m.macro_f1, m.n
        result.split = str(m.extra.get("split") or "")
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
