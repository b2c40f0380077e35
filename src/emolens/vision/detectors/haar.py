"""OpenCV's Haar cascade (Viola-Jones): no extra package, no landmarks, slower and less accurate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DetectorError
from .base import DEFAULT_MAX_SIDE, Detection, FaceDetector
from .registry import register_detector


@register_detector("haar", description="OpenCV Haar cascade (frontal faces); no landmarks; ships with OpenCV 4",
                   aliases=("opencv", "viola-jones"))
class HaarDetector(FaceDetector):
    """Scores are the cascade's last-stage weight squashed to (0, 1): a ranking, not a probability."""

    default_min_score = 0.0

    def __init__(self, min_score: float | None = None, max_side: int = DEFAULT_MAX_SIDE, min_face: int = 20,
                 threads: int | None = None, first_pass: int = 0, cascade: str = "haarcascade_frontalface_default.xml",
                 scale_factor: float = 1.1, min_neighbors: int = 5):
        super().__init__(min_score, max_side, min_face, threads, first_pass)
        import cv2

        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        path = Path(folder) / cascade
        if not folder or not path.exists():
            raise DetectorError(f"detector 'haar': OpenCV {cv2.__version__} ships no Haar cascade {cascade} "
                                "(OpenCV 5 dropped them): pip install 'opencv-python<5'")
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorError(f"detector 'haar': cannot load {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _detect(self, image: np.ndarray) -> list[Detection]:
        import cv2

        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        boxes, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_face, self.min_face), outputRejectLevels=True)
        out = []
        for (x, y, w, h), weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights)):
            out.append(Detection((float(x), float(y), float(x + w), float(y + h)),
                                 float(1 / (1 + np.exp(-weight)))))
        return out
