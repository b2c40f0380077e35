"""emolens: facial expression recognition, from raw data set to live demo, offline on a CPU.

Inference: :class:`Recognizer`. The other jobs, one function per ``emolens`` command:
:func:`train`, :func:`evaluate`, :func:`calibrate`, :func:`export`, :func:`average`,
:func:`retrain_head`, :func:`ensemble_tune`, :func:`ensemble_pack`, :func:`experiment`,
:func:`data_stats`, :func:`audit`, :func:`crop` (see :mod:`emolens.tasks`), and :func:`batch` (a corpus on a Dask
cluster -> a Parquet dataset; :mod:`emolens.cluster`). Importing emolens is light: heavy modules load
when a job runs or a Recognizer is built.
"""

from .version import __version__
from .api import Recognizer  # noqa: E402
from .tasks import (audit, average, calibrate, crop, data_stats, ensemble_pack, ensemble_tune, evaluate, experiment,
                    export, retrain_head, train, train_config)

__all__ = ["BatchSummary", "Recognizer", "__version__", "audit", "average", "batch", "calibrate", "crop", "data_stats",
           "ensemble_pack", "ensemble_tune", "evaluate", "experiment", "export", "retrain_head", "train", "train_config"]


def __getattr__(name: str):
    """``emolens.batch`` and ``emolens.BatchSummary``, loaded when first used (they sit above the
    facade, in :mod:`emolens.cluster`)."""
    if name in ("batch", "BatchSummary"):
        from . import cluster

        return getattr(cluster, name)
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")
