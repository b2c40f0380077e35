"""The toolkit's jobs as Python calls, one per ``emolens`` command, each returning a typed result.

    >>> import emolens
    >>> run = emolens.train(data=["fer2013.csv.gz"], epochs=30)         # TrainResult
    >>> m = emolens.evaluate("ferplus", ["fer2013.csv.gz"], ferplus="fer2013new.csv")   # Metrics
    >>> emolens.export("ferplus", "ferplus.onnx")                        # ExportResult
    >>> emolens.average(["a.safetensors", "b.safetensors"], "soup.safetensors")        # AverageResult

Inference is :class:`emolens.Recognizer`. Every command of the command line parses its
arguments and calls the function of the same name here (``tests/test_cli_api.py`` checks that
each command's options are this function's parameters). A call whose optional extra is not
installed raises :class:`~emolens.errors.MissingExtra` naming it, as the command says. The heavy
work lives in the packages (engine, evaluation, experiments, data); these functions only join the
steps a job needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import names_missing_extras


@names_missing_extras
def train_config(config=None, *, resume: bool = False, **options):
    """The :class:`~emolens.engine.config.TrainConfig` a run gets: ``config`` (a TrainConfig, a dict
    of its keys, a YAML file, or None for the defaults) with ``options`` over it (see
    :func:`emolens.engine.config.apply_overrides`). ``resume``: the base is the config the run in
    ``out``/``name`` saved, so a resumed run keeps its settings and ``options`` (say a larger
    ``epochs``) apply on top."""
    from .engine.config import TrainConfig, apply_overrides
    from .errors import EmolensError

    if isinstance(config, TrainConfig):
        base = config.to_dict()
    elif isinstance(config, dict):
        base = dict(config)
    elif config is not None:
        base = TrainConfig.load(config).to_dict()
    else:
        base = TrainConfig().to_dict()
    if resume:
        where = {k: v for k, v in options.items() if k in ("out", "name", "model")}
        saved = TrainConfig.from_dict(apply_overrides(base, where)).run_dir / "config.yaml"
        if not saved.exists():
            raise EmolensError(f"--resume: no run at {saved.parent} (its config.yaml is missing); "
                               "give the same --out and --name (or --config) as the first run")
        base = TrainConfig.load(saved).to_dict()
    return TrainConfig.from_dict(apply_overrides(base, options))


@names_missing_extras
def train(config=None, *, resume: bool = False, progress: bool = True, **options):
    """Train a model; returns :class:`~emolens.engine.train.TrainResult` (weights, card, metrics).

    ``config`` and ``options`` as :func:`train_config` takes them (``epochs=30``,
    ``augment={"rotation": 10}``, ``pretrained="ferplus"``); ``resume`` continues the run in
    ``out``/``name`` from its last checkpoint.
    """
    from .engine.train import train as fit

    return fit(train_config(config, resume=resume, **options), resume=resume, progress=progress)


@names_missing_extras
def evaluate(model: str | Path = "default", data=(), ferplus=None, split: str | None = None, classes=None,
             tta: bool | str | None = None, backend: str = "onnx", detect: bool = False, detector: str | None = None,
             out_dir: str | Path | None = None, raw: bool = False, class_map=None, precision: str = "float"):
    """A model's :class:`~emolens.evaluation.metrics.Metrics` on a data set split (see
    :func:`emolens.evaluation.evaluate.evaluate`); ``precision``: float (default: the network the
    card reports), int8 or auto (what the Recognizer runs)."""
    from .evaluation.evaluate import evaluate as run

    return run(model, data, ferplus=ferplus, split=split, classes=classes, tta=tta, backend=backend, detect=detect,
               detector=detector, out_dir=out_dir, raw=raw, class_map=class_map, precision=precision)


@dataclass
class CalibrateResult:
    calibration: object     # emolens.models.calibration.Calibration
    spec: Path              # the spec the calibration was written into
    report: object = None   # emolens.evaluation.calibration_stages.StageReport: every step in and out of sample


@names_missing_extras
def calibrate(model: str | Path = "default", data=(), ferplus=None, split: str | None = None,
              prior_split: str | None = None, operating_point: bool = True, max_accuracy_drop: float = 0.005,
              objective: str = "macro_f1", min_accuracy: float | None = None,
              out: str | Path | None = None, plot: str | Path | None = None,
              ship_rule: bool = True) -> CalibrateResult:
    """Fit a model's calibration and operating point on a validation split, judge each step out of
    sample (cross-fitted on two fixed halves) and store the steps that pass the ship rule in its
    spec (or in a copy at ``out``; ``ship_rule=False``: every step asked for); see
    :mod:`emolens.evaluation.calibration_stages`."""
    from .evaluation.calibration import calibrate_model

    cal, spec, report = calibrate_model(model, data, ferplus=ferplus, split=split, prior_split=prior_split,
                                        operating_point=operating_point, max_accuracy_drop=max_accuracy_drop,
                                        out=out, plot=plot, objective=objective, min_accuracy=min_accuracy,
                                        ship_rule=ship_rule)
    return CalibrateResult(cal, Path(spec), report)


@names_missing_extras
def retrain_head(model: str | Path = "default", data=(), out: str | Path = "", ferplus=None, classes=None,
                 balance: str = "oversample", c: float = 1.0, seed: int = 0, name: str | None = None):
    """Fit a model's last layer again on its frozen features (:class:`~emolens.engine.head.HeadResult`)."""
    from .engine.head import retrain_head as fit

    return fit(model, data, out, ferplus=ferplus, classes=classes, balance=balance, c=c, seed=seed, name=name)


@names_missing_extras
def average(members: Sequence[str], out: str | Path, weights: Sequence[float] | None = None,
            data: Sequence[str] | None = None, split: str = "Training", name: str | None = None):
    """One model whose weights are the mean of ``members``' (:class:`~emolens.engine.average.AverageResult`)."""
    from .engine.average import average as run

    return run(members, out, weights=weights, data=data, split=split, name=name)


@dataclass
class ExportResult:
    path: Path
    spec: object            # emolens.models.weights.ModelSpec of the exported model


@names_missing_extras
def export(model: str | Path = "default", out: str | Path | None = None) -> ExportResult:
    """Write a model as ONNX (input ``faces`` (N, C, S, S) normalised as its spec says, output
    ``logits``): a bundled model's shipped network (checked against its pinned hash, no torch
    needed), another model exported from torch. The file carries the spec (classes, preprocessing,
    calibration, emolens version) as ONNX metadata props, so it loads without the JSON spec:
    ``Recognizer(model="NAME.onnx")``."""
    from .files import atomic_write_bytes
    from .models.resolve import resolve_weights
    from .runtime.onnx_model import onnx_bytes, with_metadata

    data, spec = onnx_bytes(resolve_weights(model))
    path = Path(out or f"{spec.name}.onnx")
    atomic_write_bytes(path, with_metadata(data, spec))
    return ExportResult(path, spec)


@names_missing_extras
def ensemble_tune(models: Sequence[str], data=(), ferplus=None, classes=None, split: str | None = None,
                  objective: str = "nll", name: str = "ensemble", out: str | Path | None = None,
                  backend: str = "onnx", ship_rule: bool = True):
    """Soft-vote weights of ``models`` tuned on a validation split and judged out of sample (two
    fixed halves; equal weights unless the tuned ones pass the ship rule, or ``ship_rule=False``):
    (EnsembleSpec, metrics by kind); the spec is written to ``out`` (default NAME.ensemble.yaml)."""
    from .evaluation.ensemble import tune_ensemble

    return tune_ensemble(models, data, ferplus=ferplus, classes=classes, split=split, objective=objective,
                         name=name, out=out or f"{name}.ensemble.yaml", backend=backend, ship_rule=ship_rule)


@names_missing_extras
def ensemble_pack(spec: str | Path, out: str | Path | None = None) -> Path:
    """One model file holding every member of ``NAME.ensemble.yaml`` (default: NAME.safetensors beside it)."""
    from .models.ensemble import pack_ensemble

    spec = Path(spec)
    return pack_ensemble(spec, Path(out) if out else spec.with_name(spec.name.split(".")[0] + ".safetensors"))


@names_missing_extras
def experiment(config: str | Path, only: Sequence[str] | None = None, rerun: bool = False,
               threads: int | None = None, out: str | Path | None = None, table: str | Path | None = None,
               epochs: int | None = None, limit_train_batches: int | float | None = None,
               max_train_rows: int | None = None, max_val_rows: int | None = None, schedule_note: str | None = None,
               dry_run: bool = False, progress: bool = False, command: str = "", log=print):
    """Run an experiment file's rows (:mod:`emolens.experiments`); returns (Experiment, list of RunResult),
    the list empty with ``dry_run``. The schedule arguments shorten the file's schedule."""
    from .experiments import load_experiment, run_experiment

    exp = load_experiment(config, {"epochs": epochs, "limit_train_batches": limit_train_batches,
                                   "max_train_rows": max_train_rows, "max_val_rows": max_val_rows,
                                   "note": schedule_note})
    if out:
        exp.out = Path(out)
    if table:
        exp.table = Path(table)
    if dry_run:
        return exp, []
    results = run_experiment(exp, threads=threads, only=list(only) if only else None, rerun=rerun,
                             progress=progress, command=command, log=log)
    return exp, results


@names_missing_extras
def crop(src: str | Path, dst: str | Path, detector: str | None = None, size: int | None = None,
         margin: float | None = None, progress: bool = True):
    """Training face crops from photos in class folders: detect, align, write one grey crop per
    photo in the same layout (:class:`~emolens.vision.crops.CropSummary`); ``size`` (default 48)
    and ``margin`` (default: the recognition pipeline's) as the crops the bundled models read."""
    from .vision.align import DEFAULT_MARGIN
    from .vision.crops import CROP_SIZE, crop_folder

    return crop_folder(src, dst, detector=detector, size=size or CROP_SIZE,
                       margin=DEFAULT_MARGIN if margin is None else margin, progress=progress)


@dataclass
class AuditResult:
    report: object          # emolens.data.audit.AuditReport: the findings, counts, cross-split pairs
    written: list[Path]     # flagged.csv, a contact sheet per reason found, audit.json
    summary: dict           # what audit.json holds


@names_missing_extras
def audit(path, out: str | Path = "audit", ferplus=None, ferplus_labels: bool = False, checks: str | None = None,
          max_distance: int | None = None, detector: str | None = None, detect_side: int | None = None,
          features: str | None = None, folds: int = 5, cap: int | None = None, seed: int = 0,
          threads: int | None = None, strict: bool = False, progress: bool = True) -> AuditResult:
    """Audit a data set (:mod:`emolens.data.audit`): exact, near and cross-split duplicates, crops
    without a face (the face detector; FER+ NF votes with ``ferplus``), likely label errors
    (cleanlab on out-of-fold probabilities of frozen network features); writes ``out``/flagged.csv
    (``emolens train --exclude`` reads it), a contact sheet per reason and audit.json."""
    import json

    from .data import load_dataset
    from .data.audit import CHECKS, REASONS, findings_csv, parse_checks, run_audit
    from .data.contact_sheet import SHEET_CAP, contact_sheet_png
    from .data.face_check import DETECT_SIDE
    from .data.phash import DEFAULT_MAX_DISTANCE
    from .errors import EmolensError
    from .files import atomic_write_bytes, refuse_inside, refuse_overwriting

    checks = parse_checks(checks or ",".join(CHECKS))
    out = Path(out)
    inputs = [path] if isinstance(path, (str, Path)) else list(path)
    refuse_inside(out, inputs, "--out", "its contact sheets would be read as faces of the data set; "
                  "choose a folder outside it")
    refuse_overwriting([out / name for name in ("flagged.csv", "audit.json")], inputs, "--out")
    ds = load_dataset(path, strict=strict)
    options: dict = {}
    if "faces" in checks:
        from .data.face_check import no_face_threshold
        from .vision.detectors import create_detector

        det = create_detector(detector, min_score=0.05)
        options.update(detector=det, threshold=no_face_threshold(det), detect_side=detect_side or DETECT_SIDE)
    votes = label_ds = None
    if ferplus:
        from .data.ferplus import read_votes

        if ds.row_ids is None:
            raise EmolensError(f"--ferplus needs a FER-2013 csv, but {path} is an image folder")
        votes = read_votes(ferplus)
        if "labels" in checks and ferplus_labels:
            label_ds = load_dataset(path, ferplus=ferplus)
    elif ferplus_labels:
        raise EmolensError("--ferplus-labels needs --ferplus VOTES")
    if "labels" in checks:
        from .engine.head import feature_extractor

        options["features_of"] = feature_extractor(features or ("fer2013" if label_ds is not None else "ferplus"),
                                                   threads, progress)
    report = run_audit(ds, checks, max_distance=DEFAULT_MAX_DISTANCE if max_distance is None else max_distance,
                       label_ds=label_ds, votes=votes, folds=folds, seed=seed, progress=progress, **options)
    atomic_write_bytes(out / "flagged.csv", findings_csv(report))
    written = [out / "flagged.csv"]
    for reason in REASONS:
        png = contact_sheet_png(report, reason, cap=cap or SHEET_CAP)
        sheet = out / f"sheet_{reason}.png"
        if png is not None:
            atomic_write_bytes(sheet, png)
            written.append(sheet)
        else:
            sheet.unlink(missing_ok=True)        # no stale sheet from an earlier audit into the same folder
    summary = {"source": ds.source, "rows": len(ds), "counts": report.counts(), "checks": checks,
               "cross_split_pairs": report.cross_split_pairs, "seconds": report.seconds, "notes": report.notes,
               "unreliable": report.unreliable}
    atomic_write_bytes(out / "audit.json", (json.dumps(summary, indent=2) + "\n").encode())
    return AuditResult(report, written + [out / "audit.json"], summary)


@names_missing_extras
def data_stats(path=(), ferplus=None, classes=None, strict: bool = False, class_map=None) -> dict:
    """Rows per split and class of a data set, and FER+ drops (what ``emolens data stats`` prints);
    ``class_map``: folder or label names -> classes (``1=surprise,...``, a YAML file or a preset)."""
    from .data import load_dataset

    return load_dataset(path, ferplus=ferplus, classes=classes, strict=strict, class_map=class_map).summary()
