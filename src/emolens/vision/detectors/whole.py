"""No detection, for pre-cropped faces: each image is one face, the whole image (deepface's
``detector_backend="skip"``). The alignment step then only resizes it to the model's input (a
non-square image is centred in a square, its edges repeated); there are no landmarks to level."""

from __future__ import annotations

import numpy as np

from .base import Detection, FaceDetector
from .registry import register_detector


@register_detector("none", aliases=("skip", "crops"),
                   description="no detection: each image is one face (pre-cropped faces), resized to the model")
class WholeImageDetector(FaceDetector):
    """One face per image, its box the whole image, score 1."""

    default_min_score = 0.0

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        h, w = np.shape(image)[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), 1.0)] if h and w else []
