"""What every face detector gives (:class:`Detection`) and does (:class:`FaceDetector`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..detection_size import FIRST_PASS_REACH, PHOTO

#: Longer side, in pixels, of the copy a detector built on its own works on (0: the image as it
#: is): the photo size of :mod:`emolens.vision.detection_size` (a Recognizer passes the size of
#: each kind of input to :meth:`FaceDetector.detect`).
DEFAULT_MAX_SIDE = PHOTO

#: Landmark order, for every detector that gives landmarks: left/right as seen in the image.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Detection:
    """One face: box (x1, y1, x2, y2) in image pixels, confidence, and 5 landmarks (5, 2) or None."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


def default_threads() -> int:
    """Threads for a detector's own runtime: ``EMOLENS_THREADS``, else 0 (the runtime decides)."""
    value = os.environ.get("EMOLENS_THREADS", "")
    return int(value) if value.strip().isdigit() else 0


class FaceDetector:
    """Finds faces in an RGB uint8 image (H, W, 3).

    Subclasses implement :meth:`_detect` on an image no larger than ``max_side``; this class
    scales large images down first and the results back up, clips boxes to the image, drops
    faces under ``min_score`` or smaller than ``min_face`` pixels, and sorts by score.

    Two passes (``first_pass``, a size in pixels; 0: one pass): an image the detection size would
    detect at more than ``first_pass`` px (and at most ``FIRST_PASS_REACH`` times that,
    :mod:`emolens.vision.detection_size`) is first detected at ``first_pass`` px, and that answer
    stands when it is sure (:meth:`sure`: a face, every face clear, none small for that size, and
    no faint candidate elsewhere); otherwise the image is detected again at the detection size.
    A detector gives the faint candidates it sees (scores from ``hint_score``) when it can
    (:attr:`gives_hints`); one that cannot is trusted on its faces alone.
    """

    name = ""
    gives_landmarks = False
    gives_hints = False          # _detect returns candidates down to hint_score (below min_score) too
    default_min_score = 0.5
    #: The first pass is sure only when every face it found scores at least this ...
    sure_score = 0.9
    #: ... is at least this many pixels wide in the image that pass detected ...
    sure_face = 32
    #: ... and no other candidate scored this much (a face too small or too faint for that size).
    hint_score = 0.2

    def __init__(self, min_score: float | None = None, max_side: int = DEFAULT_MAX_SIDE, min_face: int = 12,
                 threads: int | None = None, first_pass: int = 0):
        self.min_score = self.default_min_score if min_score is None else float(min_score)
        self.max_side = int(max_side)
        self.min_face = int(min_face)
        self.threads = default_threads() if threads is None else int(threads)
        self.first_pass = int(first_pass)
        self.passes = {"first": 0, "full": 0}     # how often each answered (benchmarks/pipeline.py reports it)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_score={self.min_score}, max_side={self.max_side})"

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Faces in an RGB uint8 image, best first; an image without faces gives an empty list.

        ``max_side``: the detection size for this call (default: the detector's own)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            from ..images import array_to_rgb

            image = array_to_rgb(image)
        max_side = self.max_side if max_side is None else int(max_side)
        longest = max(image.shape[:2])
        full = longest if max_side <= 0 else min(max_side, longest)
        if 0 < self.first_pass < full <= self.first_pass * FIRST_PASS_REACH:
            candidates, scale = self._scaled(image, self.first_pass)
            found = self._faces(candidates)
            if self.sure(found, candidates, scale):
                self.passes["first"] += 1
                return found
        self.passes["full"] += 1
        return self._faces(self._scaled(image, max_side)[0])

    def sure(self, found: list[Detection], candidates: list[Detection], scale: float) -> bool:
        """Whether a first pass at ``scale`` (its faces ``found``, all its ``candidates``) can stand."""
        if not found or any(d.score < self.sure_score or min(d.width, d.height) * scale < self.sure_face
                            for d in found):
            return False
        kept = {id(d) for d in found}
        return not any(id(d) not in kept and d.score >= self.hint_score for d in candidates)

    def _scaled(self, image: np.ndarray, max_side: int) -> tuple[list[Detection], float]:
        """Every candidate :meth:`_detect` gives on a copy at most ``max_side`` px (0: full size), in
        image coordinates (clipped), and the scale of that copy."""
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w)) if max_side > 0 else 1.0
        small = image
        if scale < 1.0:
            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        out = []
        for d in self._detect(np.ascontiguousarray(small)):
            x1, y1, x2, y2 = (v / scale for v in d.box)
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            marks = None if d.landmarks is None else np.asarray(d.landmarks, np.float32).reshape(5, 2) / scale
            out.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(d.score), marks))
        return out, scale

    def _faces(self, candidates: list[Detection]) -> list[Detection]:
        """The candidates that are faces (``min_score``, ``min_face``), best first (the same objects)."""
        found = [d for d in candidates if d.score >= self.min_score and min(d.width, d.height) >= self.min_face]
        found.sort(key=lambda d: -d.score)
        return found

    def _detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError
