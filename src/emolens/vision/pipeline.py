"""Detect, align, classify: RGB images in, typed :class:`FrameResult` objects out.

All faces of all images given in one call are classified in ONE batched classifier call.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .align import DEFAULT_MARGIN, align_faces, to_grey
from .detectors.base import Detection, FaceDetector
from .results import FaceResult, FrameResult, top_label


def reading_order(detections: Sequence[Detection]) -> list[Detection]:
    """Faces as one reads a group photo: rows top to bottom, each left to right.

    A row is the faces whose vertical centres lie within half a face height of the row's mean
    centre (the larger of the face's and the row's mean height), so a row whose faces sit a little
    higher or lower, or a smaller face beside a larger one, stays one row."""
    rows: list[list[Detection]] = []
    for det in sorted(detections, key=lambda d: (d.box[1] + d.box[3]) / 2):
        centre, height = (det.box[1] + det.box[3]) / 2, det.box[3] - det.box[1]
        if rows:
            row = rows[-1]
            row_centre = sum((d.box[1] + d.box[3]) / 2 for d in row) / len(row)
            row_height = sum(d.box[3] - d.box[1] for d in row) / len(row)
            if abs(centre - row_centre) <= max(height, row_height) / 2:
                row.append(det)
                continue
        rows.append([det])
    return [det for row in rows for det in sorted(row, key=lambda d: d.box[0])]


class Pipeline:
    """A face detector and a classifier (``emolens.runtime.Classifier``) joined by the alignment step.

    ``tta``: test-time augmentation (none, flip or ten_crop; True: flip); None follows the model spec.
    ``min_confidence``: a face whose top (calibrated) probability is below it is labelled ``uncertain``.
    ``max_side``: the detection size of :meth:`run` (None: the detector's own)."""

    def __init__(self, detector: FaceDetector, classifier, margin: float = DEFAULT_MARGIN, tta: bool | str | None = None,
                 min_confidence: float | None = None, max_side: int | None = None):
        self.detector = detector
        self.max_side = max_side
        self.classifier = classifier
        self.margin = margin
        self.tta = tta
        self.min_confidence = min_confidence

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def crops(self, rgb: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
        """Aligned grey crops (N, S, S) at the classifier's input size."""
        return align_faces(to_grey(rgb), detections, self.classifier.input_size, self.margin)

    def run(self, images: Sequence[np.ndarray], sources: Sequence[str] | None = None,
            max_side: int | None = None) -> list[FrameResult]:
        """One FrameResult per RGB uint8 image, faces in reading order (:func:`reading_order`); no faces
        gives an empty FrameResult. ``max_side``: the detection size for this call (a stream's; default: the pipeline's)."""
        sources = list(sources) if sources is not None else [""] * len(images)
        max_side = self.max_side if max_side is None else max_side
        detections, crops, timings = [], [], []
        for rgb in images:
            t0 = time.perf_counter()
            dets = reading_order(self.detector.detect(rgb, max_side))   # face 1, 2, ... as one reads them
            t1 = time.perf_counter()
            crops.append(self.crops(rgb, dets))
            t2 = time.perf_counter()
            detections.append(dets)
            timings.append({"detect": (t1 - t0) * 1e3, "align": (t2 - t1) * 1e3})
        t0 = time.perf_counter()
        all_crops = np.concatenate(crops) if crops else np.zeros((0, 1, 1), np.uint8)
        probs = self.classifier.predict_proba(all_crops, tta=self.tta) if len(all_crops) else \
            np.zeros((0, len(self.classes)), np.float32)
        per_face_ms = (time.perf_counter() - t0) * 1e3 / max(len(all_crops), 1)
        frames, start = [], 0
        for rgb, dets, source, timing in zip(images, detections, sources, timings):
            frames.append(self._frame(rgb.shape, dets, probs[start:start + len(dets)], source, timing, per_face_ms))
            start += len(dets)
        return frames

    def classify_faces(self, grey: np.ndarray, detections: Sequence[Detection], source: str = "") -> FrameResult:
        """The FrameResult of faces already located in a grey (H, W) uint8 frame (carried along a
        video by a tracker): aligned and classified, no detection; faces keep the order given."""
        t0 = time.perf_counter()
        crops = align_faces(grey, detections, self.classifier.input_size, self.margin)
        t1 = time.perf_counter()
        probs = self.classifier.predict_proba(crops, tta=self.tta) if len(crops) else \
            np.zeros((0, len(self.classes)), np.float32)
        per_face_ms = (time.perf_counter() - t1) * 1e3 / max(len(crops), 1)
        return self._frame(grey.shape, detections, probs, source, {"align": (t1 - t0) * 1e3}, per_face_ms)

    def _frame(self, shape, dets, probs, source: str, timing: dict, per_face_ms: float) -> FrameResult:
        timing["classify"] = per_face_ms * len(dets)
        timing["total"] = sum(timing.values())
        return FrameResult(faces=[self._face(d, p) for d, p in zip(dets, probs)], width=int(shape[1]),
                           height=int(shape[0]), source=source, timings_ms=timing)

    def _face(self, det: Detection, probs: np.ndarray) -> FaceResult:
        probabilities = dict(zip(self.classes, map(float, probs)))
        label, confidence = top_label(probabilities, self.min_confidence)
        marks = None if det.landmarks is None else [(float(x), float(y)) for x, y in det.landmarks]
        return FaceResult(box=tuple(float(v) for v in det.box), score=float(det.score), label=label,
                          confidence=confidence, probabilities=probabilities, landmarks=marks)
