"""Is there a face in a 48-pixel crop? The best score a photo face detector gives it over several views.

Photo detectors (RetinaFace) are built for faces upright, with some context, in a photo of
ordinary contrast. A data set's crops are none of these: the face fills the crop, a tenth of
them are tilted or lying sideways, some are faint behind a watermark. So a crop is shown in turn
upscaled, with a border, larger, contrast-equalised, turned by 30 degrees either way, turned on
its side either way, and larger still, and its best face score is the highest over the views,
stopping at the first that reaches the threshold (most crops stop at the first view).

The audit's threshold (:data:`NO_FACE_SCORE`) is lower than the detector's own for photos
(RetinaFace: 0.75, set where a false box costs more than a missed face): for "no face at all" a
weak face is still a face. Measured on FER-2013 PublicTest (docs/experiments/audit.md).
"""

from __future__ import annotations

import sys
from typing import Iterator

import numpy as np

#: Side, in pixels, a crop is upscaled to before face detection; the retries pad it and enlarge it.
DETECT_SIDE = 144
DETECT_PAD = 0.25
#: A crop whose best face score over the views is below this holds no face (at most the detector's own threshold).
NO_FACE_SCORE = 0.5
#: Turns tried for a tilted face, in degrees (counter-clockwise).
TILTS = (-30, 30)


def no_face_threshold(detector) -> float:
    """The score under which the audit calls a crop faceless: :data:`NO_FACE_SCORE`, or the detector's
    own photo threshold where that is lower (a detector whose scores mean something else)."""
    return min(NO_FACE_SCORE, float(getattr(detector, "default_min_score", NO_FACE_SCORE)))


def upscale_views(face: np.ndarray, side: int = DETECT_SIDE) -> Iterator[np.ndarray]:
    """RGB views of a small grey crop for a photo face detector, made one at a time as they are asked
    for, in this order: upscaled to ``side``; the same with a replicated border (a face filling the
    crop touches its edges); larger (x4/3); bordered and contrast-equalised (a faint or dark face);
    bordered and turned by each of :data:`TILTS`; bordered and on its side, both ways; larger (x5/3), bordered."""
    import cv2

    def rgb(view: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.ascontiguousarray(view), cv2.COLOR_GRAY2RGB)

    def bordered(image: np.ndarray) -> np.ndarray:
        pad = int(image.shape[0] * DETECT_PAD)
        return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)

    def resized(k: float) -> np.ndarray:
        n = int(side * k)
        return cv2.resize(face, (n, n), interpolation=cv2.INTER_CUBIC)

    big = resized(1)
    yield rgb(big)
    padded = bordered(big)
    yield rgb(padded)
    yield rgb(resized(4 / 3))
    yield rgb(bordered(cv2.equalizeHist(big)))
    h, w = padded.shape
    for angle in TILTS:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        yield rgb(cv2.warpAffine(padded, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    yield rgb(np.rot90(padded, 1))
    yield rgb(np.rot90(padded, 3))
    yield rgb(bordered(resized(5 / 3)))


def best_face_scores(faces: np.ndarray, detector, threshold: float, side: int = DETECT_SIDE,
                     progress: bool = False) -> np.ndarray:
    """The best face score of each uint8 crop (N, H, W) over :func:`upscale_views`, stopping at the first
    view that reaches ``threshold``. ``detector``: any object with ``detect(rgb) -> detections with
    .score``, built with a low ``min_score`` so that weak faces still report their score."""
    from tqdm import tqdm

    scores = np.zeros(len(faces))
    rows = tqdm(range(len(faces)), desc="audit: face detector", unit="face", disable=not progress,
                file=sys.stderr, mininterval=2)
    for i in rows:
        for view in upscale_views(faces[i], side):
            scores[i] = max([scores[i]] + [d.score for d in detector.detect(view)])
            if scores[i] >= threshold:
                break
    return scores
