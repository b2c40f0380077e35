"""libfacedetection (YuNet CNN, compiled C++) from the optional ``yuface`` package."""

from __future__ import annotations

import numpy as np

from .base import DEFAULT_MAX_SIDE, Detection, FaceDetector
from .registry import register_detector


@register_detector("yuface", package="yuface", module="yuface", landmarks=True, aliases=("yunet", "libfacedetection"),
                   description="libfacedetection (YuNet), C++; 5 landmarks; optional (CPython <= 3.11)",
                   install="pip install yuface  (or: pip install 'emolens[detectors]')")
class YufaceDetector(FaceDetector):
    default_min_score = 0.6

    def __init__(self, min_score: float | None = None, max_side: int = DEFAULT_MAX_SIDE, min_face: int = 12,
                 threads: int | None = None, first_pass: int = 0):
        super().__init__(min_score, max_side, min_face, threads, first_pass)
        import yuface

        self._detect_bgr = yuface.detect

    def _detect(self, image: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(image[..., ::-1])
        scores, boxes, marks = self._detect_bgr(bgr, conf=self.min_score)
        out = []
        for score, (x, y, w, h), points in zip(scores, boxes.astype(float), marks.astype(np.float32)):
            out.append(Detection((x, y, x + w, y + h), float(score) / 100.0, points.reshape(5, 2)))
        return out
