"""Lightning plug-ins of the training engine: atomic checkpoints, the kept epochs' checkpoints and a
wall-clock keeper."""

from __future__ import annotations

import re
import time
from pathlib import Path

from lightning.fabric.utilities.cloud_io import _atomic_save
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..files import atomic_path, atomic_write_bytes, is_partial_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it, so a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            _atomic_save(checkpoint, tmp)


def keep_last_epochs(run_dir: Path, n: int) -> ModelCheckpoint:
    """Keep the last ``n`` epochs' checkpoints as RUN/checkpoints/epochNN.ckpt (NN from 0: epoch07 after the
    8th epoch); the highest epoch numbers are the last ones."""
    return ModelCheckpoint(dirpath=Path(run_dir) / "checkpoints", filename="epoch{epoch:02d}", monitor="epoch",
                           mode="max", save_top_k=n, auto_insert_metric_name=False, enable_version_counter=False)


def kept_epoch_checkpoints(run_dir: str | Path) -> list[Path]:
    """The epoch checkpoints :func:`keep_last_epochs` kept in a run folder, oldest first (by number, not name)."""
    found = [(int(m.group(1)), p) for p in (Path(run_dir) / "checkpoints").glob("epoch*.ckpt")
             if (m := re.fullmatch(r"epoch(\d+)\.ckpt", p.name))]
    return [p for _, p in sorted(found)]


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a kill interrupted (the checkpoints
    themselves are whole: a write only replaces one when it is complete)."""
    stale = sorted(p for p in folder.glob(".*.ckpt.*") if is_partial_write(p)) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def read_seconds(run_dir: Path) -> float:
    try:
        return float((run_dir / "seconds.txt").read_text())
    except (OSError, ValueError):
        return 0.0


class TimeKeeper(Callback):
    """Adds each epoch's wall time to ``run_dir/seconds.txt``, so a resumed run reports its total time."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.start = time.time()

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.time()

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        total = read_seconds(self.run_dir) + time.time() - self.start
        atomic_write_bytes(self.run_dir / "seconds.txt", f"{total:.1f}\n".encode())
        self.start = time.time()


class EpochLine(Callback):
    """One line per epoch: the epoch's losses and accuracies, the best validation accuracy so far,
    the rate in faces per second and the time left (from the mean epoch time of this session)."""

    def __init__(self):
        self.started: float | None = None
        self.epoch_start = time.time()
        self.epochs_done = 0
        self.faces = 0
        self.best: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_start = time.time()
        self.faces = 0
        if self.started is None:
            self.started = self.epoch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.faces += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        self.epochs_done += 1
        now = time.time()
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        val_acc = metrics.get("val_acc")
        if val_acc is not None:
            self.best = val_acc if self.best is None else max(self.best, val_acc)
        seconds = now - self.epoch_start
        mean = (now - (self.started or now)) / self.epochs_done
        left = max(trainer.max_epochs - trainer.current_epoch - 1, 0) * mean
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        parts += [f"{k} {metrics[k]:.4f}" for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in metrics]
        if self.best is not None:
            parts.append(f"(best {self.best:.4f})")
        parts.append(f"{seconds:.1f} s, {self.faces / max(seconds, 1e-9):,.0f} faces/s, ETA {_duration(left)}")
        from tqdm import tqdm

        tqdm.write("  ".join(parts))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
