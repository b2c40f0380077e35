"""``emolens train``: data -> balance -> Lightning fit (checkpoint every epoch, resumable) -> export -> report."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from ..data import FaceDataset, load_dataset
from ..data.balance import balance
from ..data.folders import FLAT_SPLIT
from ..data.splits import TrainVal, hold_out
from ..errors import DataError, EmolensError
from ..text import duration, plural
from ..models.registry import count_parameters, create_model, model_info
from ..models.weights import ModelSpec, save_model
from .callbacks import (AtomicCheckpointIO, EpochLine, TimeKeeper, keep_last_epochs, read_seconds,
                        remove_partial_writes)
from .config import TrainConfig, resolve_precision
from .module import FERModule
from .quiet import quiet_lightning
from .report import write_report


@dataclass
class TrainResult:
    run_dir: Path
    weights: Path
    val_accuracy: float
    val_macro_f1: float
    epochs: int
    seconds: float


class _Faces(torch.utils.data.Dataset):
    def __init__(self, ds: FaceDataset):
        self.images = torch.from_numpy(ds.images)
        self.labels = torch.from_numpy(ds.labels)
        soft = ds.soft_labels if ds.soft_labels is not None else np.eye(len(ds.class_names), dtype=np.float32)[ds.labels]
        self.soft = torch.from_numpy(np.ascontiguousarray(soft, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i], self.soft[i]


def prepare_data(cfg: TrainConfig) -> TrainVal:
    """The training and validation parts. A data set without a validation split (``ROOT/<class>/*``,
    a CSV without a split column, ``ROOT/train/...`` alone) gets one held out of its training
    faces: ``val_fraction`` of each class, drawn with ``val_seed`` (not ``seed``: runs that differ in
    their training seed still validate on the same faces). PrivateTest is used only when named."""
    ds = load_dataset(cfg.data, ferplus=cfg.ferplus, classes=cfg.classes, fer2013_label_weight=cfg.fer2013_label_weight,
                      class_map=cfg.class_map)
    held_out = (f"{cfg.val_fraction:g} of {{}} held out, stratified by class (--val-fraction, "
                f"--val-seed {cfg.val_seed})")
    if ds.split_names == [FLAT_SPLIT] and not cfg.train_split and not cfg.val_split:
        train, val = hold_out(ds, cfg.val_fraction, cfg.val_seed)
        result = TrainVal(train, val, held_out.format("the faces"), held_out=True)
    else:
        train = ds.split(cfg.train_split, "train")
        try:
            val = ds.split(cfg.val_split, "val")
            result = TrainVal(train, val, f"the data's {val.split_names[0]} split" if len(val) else "")
        except DataError:
            if cfg.val_split:
                raise
            name = train.split_names[0] if len(train) else "train"
            train, val = hold_out(train, cfg.val_fraction, cfg.val_seed)
            result = TrainVal(train, val, held_out.format(f"the {name} split"), held_out=True)
    if cfg.exclude:
        from ..data.exclude import apply_exclusions, read_exclusions

        # the ids of rows that FER+ or --classes dropped still name rows of the whole file
        raw = load_dataset(cfg.data, class_map=cfg.class_map) if cfg.ferplus or cfg.classes else None
        flagged = read_exclusions(cfg.exclude, cfg.exclude_reasons)
        result.train, n = apply_exclusions(result.train, ds, flagged, raw=raw)
        held_back = flagged.describe_held_back()
        print(f"excluded {n} training rows flagged in {cfg.exclude}" + (f"; {held_back}" if held_back else ""))
    if len(result.train) == 0 or len(result.val) == 0:
        raise EmolensError(f"{ds.source}: the train or validation split is empty")
    return result


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    cfg.validate()
    cfg.precision = resolve_precision(cfg.precision, cfg.accelerator)  # recorded resolved in config.yaml
    run_dir = cfg.run_dir
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.exists():
            raise EmolensError(f"--resume: no checkpoint at {last}; start the run without --resume")
    elif last.exists():
        raise EmolensError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --name")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")

    parts = prepare_data(cfg)
    train_ds, val_ds = parts.train, parts.val
    print(parts.describe())
    if cfg.teacher:
        from .distill import with_teacher_labels

        train_ds = with_teacher_labels(train_ds, cfg.teacher, cfg.teacher_tta, cfg.teacher_mix if cfg.ferplus else 1.0)
    balanced = balance(train_ds, cfg.balance, seed=cfg.seed)
    if cfg.balance != "none":
        print(balanced.describe())

    side = train_ds.images.shape[-1]
    crop = cfg.augment.crop if cfg.augment.crop < side else 0
    options = dict(cfg.model_options)
    if model_info(cfg.model).sized:
        options.setdefault("input_size", crop or side)
    model = create_model(cfg.model, num_classes=len(train_ds.class_names), **options)
    print(f"model {cfg.model} {options}: {count_parameters(model):,} parameters, {len(train_ds.class_names)} classes")
    prior = np.bincount(balanced.dataset.labels, minlength=len(train_ds.class_names)) / len(balanced.dataset)
    module = FERModule(model, cfg, balanced.class_weights, class_prior=prior, class_names=train_ds.class_names)
    if resume:
        print(f"resuming from {last}")
    elif module.pretrained_load is not None:
        print(module.pretrained_load.describe())
    elif cfg.pretrained:
        print(f"pretrained {cfg.pretrained}: the backbone's weights loaded (timm)")
    else:
        print("initial weights: random (from scratch; --pretrained NAME|FILE fine-tunes a model)")
    train_loader = torch.utils.data.DataLoader(_Faces(balanced.dataset), batch_size=cfg.batch_size, shuffle=True,
                                               drop_last=len(balanced.dataset) > cfg.batch_size, num_workers=0)
    val_loader = torch.utils.data.DataLoader(_Faces(val_ds), batch_size=512, shuffle=False, num_workers=0)

    callbacks = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_acc", mode="max",
                        save_top_k=1, enable_version_counter=False),
        # Unmonitored: rewritten after every epoch (a monitored one with save_last only writes on improvement).
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                        every_n_epochs=1, enable_version_counter=False),
    ]
    if cfg.keep_epochs:
        callbacks.append(keep_last_epochs(run_dir, cfg.keep_epochs))
    bar = progress and sys.stderr.isatty()  # a progress bar where someone watches; in logs, a line per epoch
    if bar:
        callbacks.append(TQDMProgressBar(refresh_rate=10, leave=False))
    callbacks.append(TimeKeeper(run_dir))
    callbacks.append(EpochLine())
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor="val_acc", mode="max", patience=cfg.early_stopping))
    if resume:
        keep_previous_log(run_dir / "logs")
        remove_partial_writes(run_dir / "checkpoints")
    loggers = [CSVLogger(run_dir, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    except ImportError:
        pass
    quiet_lightning()
    trainer = pl.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, precision=cfg.precision, callbacks=callbacks, logger=loggers,
        enable_progress_bar=bar, enable_model_summary=False, log_every_n_steps=20,
        limit_train_batches=cfg.limit_train_batches, plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir,
    )
    if trainer.world_size > 1 and trainer.global_rank == 0:
        print(f"distributed: {trainer.world_size} processes ({trainer.num_nodes} node(s) x {trainer.num_devices} "
              f"device(s), strategy {cfg.strategy})")
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None)
    seconds = read_seconds(run_dir)
    if trainer.global_rank != 0:
        return TrainResult(run_dir, Path(), 0.0, 0.0, trainer.current_epoch, seconds)

    chosen = callbacks[0].best_model_path if cfg.export_checkpoint == "best" else ""
    state = torch.load(chosen or str(last), map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state, strict=False)
    spec = ModelSpec(name=cfg.name or cfg.model, arch=cfg.model, classes=list(train_ds.class_names),
                     preprocess=cfg.preprocess(side), options=options)
    metrics = write_report(module.model, spec, val_ds, run_dir, cfg, seconds, trainer.current_epoch)
    spec.metrics = {"split": val_ds.split_names[0], "accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1,
                    "weighted_f1": metrics.weighted_f1, "n": metrics.n}
    weights = save_model(module.model, spec, run_dir / "model" / f"{spec.name}.safetensors")
    from .card import bundle

    # the model card beside the weights (one-pass predictions stay the model's default: tta none)
    bundle(run_dir, run_dir / "model", run_dir / "model", spec.name, f"emolens train --config {run_dir / 'config.yaml'}",
           tta="none", parts=parts)
    print(summary_text(run_dir, weights, metrics, spec.metrics["split"], chosen or str(last), seconds,
                       trainer.current_epoch))
    return TrainResult(run_dir, weights, metrics.accuracy, metrics.macro_f1, trainer.current_epoch, seconds)


def summary_text(run_dir: Path, weights: Path, metrics, split: str, checkpoint: str, seconds: float,
                 epochs: int) -> str:
    """The run's last words: the validation numbers and where every output is."""
    rows = [
        ("weights", weights), ("model spec", weights.with_suffix(".json")), ("model card", weights.with_suffix(".md")),
        ("checkpoint", Path(checkpoint)),
        ("metrics", run_dir / "metrics.json"), ("report", run_dir / "report.txt"),
        ("confusion matrix", run_dir / "confusion_matrix.png"), ("curves", run_dir / "curves.png"),
        ("epoch log", run_dir / "logs" / "metrics.csv"), ("config", run_dir / "config.yaml"),
    ]
    lines = [f"done: {plural(epochs, 'epoch')} in {duration(seconds)}; {split} accuracy {metrics.accuracy:.4f}, "
             f"macro-F1 {metrics.macro_f1:.4f} (n={metrics.n})"]
    lines += [f"  {what:<17} {path}" for what, path in rows if path.exists()]
    lines.append(f"use it: emolens predict PHOTO --model {weights}")
    return "\n".join(lines)


def keep_previous_log(logs: Path) -> None:
    """Lightning's CSV logger deletes an existing metrics.csv: keep it as metrics-partN.csv instead."""
    current = logs / "metrics.csv"
    if current.exists():
        n = len(list(logs.glob("metrics-part*.csv"))) + 1
        current.rename(logs / f"metrics-part{n}.csv")
