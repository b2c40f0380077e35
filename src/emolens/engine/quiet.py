"""Lightning's own chatter, silenced: tips and adverts (litlogger, "💡 Tip"), the GPU/TPU inventory,
and warnings that repeat every run without anything for the user to do. ``emolens train`` prints
its own lines (data, model, one per epoch, the summary) instead."""

from __future__ import annotations

import logging
import warnings

#: Loggers whose INFO lines are tips, adverts or hardware inventory.
CHATTY_LOGGERS = (
    "lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric",
    "lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
)

#: Warnings (regular expressions on the message) that say nothing actionable for emolens' data loaders.
NOISE = (
    r".*does not have many workers.*",           # the in-memory loaders need none
    r".*litlogger.*", r".*[Ll]itServe.*", r".*Tip.*",
    r".*GPU available but not used.*",
    r".*number of training batches.*is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*You are using a CUDA device .* that has Tensor Cores.*",
)


def quiet_lightning() -> None:
    """Set the chatty loggers to WARNING and ignore the noise warnings (idempotent)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
