"""emolens: facial expression recognition, from raw data set to live demo, offline on a CPU.

Inference: :class:`Recognizer`. The other jobs, one function per ``emolens`` command:
:func:`train`, :func:`evaluate`, :func:`calibrate`, :func:`export`, :func:`average`,
:func:`retrain_head`, :func:`ensemble_tune`, :func:`ensemble_pack`, :func:`experiment`,
:func:`data_stats`, :func:`audit`, :func:`crop` (see :mod:`emolens.tasks`). Importing emolens is light: heavy modules load
when a job runs or a Recognizer is built.
"""

from .version import __version__
from .api import Recognizer  # noqa: E402
from .tasks import (audit, average, calibrate, crop, data_stats, ensemble_pack, ensemble_tune, evaluate, experiment,
                    export, retrain_head, train, train_config)

__all__ = ["Recognizer", "__version__", "audit", "average", "calibrate", "crop", "data_stats", "ensemble_pack",
           "ensemble_tune", "evaluate", "experiment", "export", "retrain_head", "train", "train_config"]
