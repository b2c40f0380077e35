"""Class probabilities for arrays of face crops with a torch model, batched, optional test-time augmentation."""

from __future__ import annotations

import numpy as np
import torch

from ..models.weights import Preprocess
from .metrics import Metrics, compute_metrics


@torch.no_grad()
def predict_proba(model: torch.nn.Module, preprocess: Preprocess, faces: np.ndarray, batch_size: int = 512,
                  tta: bool | str = False) -> np.ndarray:
    """Probabilities (N, C) for uint8 faces (N, H, W) already at the model's input size; ``tta``:
    none, flip or ten_crop (see :meth:`Preprocess.views`)."""
    model.eval()
    out = []
    for start in range(0, len(faces), batch_size):
        views = preprocess.views(faces[start:start + batch_size], tta)
        probs = sum(model(torch.from_numpy(x)).float().softmax(1) for x in views) / len(views)
        out.append(probs.numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)


def predicted_metrics(model: torch.nn.Module, preprocess: Preprocess, faces: np.ndarray, labels: np.ndarray,
                      classes, tta: bool | str = False) -> Metrics:
    """The metrics of ``model``'s predictions (argmax of :func:`predict_proba`) against ``labels``."""
    return compute_metrics(labels, predict_proba(model, preprocess, faces, tta=tta).argmax(1), classes)
