"""Class probabilities for arrays of face crops with a torch model, batched, optional flip TTA."""

from __future__ import annotations

import numpy as np
import torch

from ..models.weights import Preprocess


@torch.no_grad()
def predict_proba(model: torch.nn.Module, preprocess: Preprocess, faces: np.ndarray, batch_size: int = 512,
                  tta: bool = False) -> np.ndarray:
    """Probabilities (N, C) for uint8 faces (N, H, W) already at the model's input size."""
    model.eval()
    out = []
    for start in range(0, len(faces), batch_size):
        x = torch.from_numpy(preprocess.normalise(faces[start:start + batch_size]))
        logits = model(x).float()
        probs = logits.softmax(1)
        if tta:
            probs = (probs + model(torch.flip(x, dims=[3])).float().softmax(1)) / 2
        out.append(probs.numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)
