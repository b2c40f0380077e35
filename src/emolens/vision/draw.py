"""Draw results on an image: a box per face in its label's colour, the label (and track id), bars
for the top probabilities, and the landmarks. Works on BGR images (OpenCV's order), in place."""

from __future__ import annotations

import numpy as np

from .results import UNCERTAIN, FrameResult

#: BGR colour per canonical class name; other names get a colour from their hash.
COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 250),
    "sad": (200, 110, 30), "surprise": (0, 140, 255), "neutral": (190, 190, 190), "contempt": (120, 120, 40),
    UNCERTAIN: (128, 128, 128),
}


def colour(label: str) -> tuple[int, int, int]:
    if label in COLOURS:
        return COLOURS[label]
    h = sum(map(ord, label)) * 2654435761 % 2**24
    return (h & 255, (h >> 8) & 255, (h >> 16) & 255)


def annotate(bgr: np.ndarray, frame: FrameResult, top_k: int = 3, landmarks: bool = True) -> np.ndarray:
    """Draw ``frame``'s faces on ``bgr`` (H, W, 3) uint8, in place; returns it."""
    import cv2

    h, w = bgr.shape[:2]
    unit = max(1.0, min(h, w) / 480)                  # scale lines and text with the image
    thick = max(1, round(2 * unit))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for face in frame.faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        col = colour(face.label)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), col, thick, cv2.LINE_AA)
        if landmarks and face.landmarks:
            for x, y in face.landmarks:
                cv2.circle(bgr, (int(x), int(y)), thick, (255, 255, 255), -1, cv2.LINE_AA)
        head = f"{face.label} {face.confidence:.0%}"
        if face.label == UNCERTAIN:                   # say what it leans to: "uncertain (happy 41%)"
            head = f"{UNCERTAIN} ({face.top(1)[0][0]} {face.confidence:.0%})"
        if face.track_id is not None:
            head = f"#{face.track_id} {head}"
        scale = 0.5 * unit
        (tw, th), base = cv2.getTextSize(head, font, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y2 + th + 4
        cv2.rectangle(bgr, (x1, ty - th - base), (x1 + tw + 4, ty + base), col, -1)
        cv2.putText(bgr, head, (x1 + 2, ty), font, scale, (0, 0, 0), max(1, thick - 1), cv2.LINE_AA)
        _bars(bgr, face.top(top_k), x1, max(y2, ty + base) + 4, max(x2 - x1, int(90 * unit)), unit)
    return bgr


def _bars(bgr: np.ndarray, items: list[tuple[str, float]], x: int, y: int, width: int, unit: float) -> None:
    """Small horizontal bars, one per (class, probability), below a face."""
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.38 * unit
    row = int(13 * unit)
    for i, (name, p) in enumerate(items):
        top = y + i * row
        if top + row > bgr.shape[0]:
            break
        cv2.rectangle(bgr, (x, top), (x + width, top + row - 2), (40, 40, 40), -1)
        cv2.rectangle(bgr, (x, top), (x + int(width * p), top + row - 2), colour(name), -1)
        cv2.putText(bgr, f"{name} {p:.2f}", (x + 2, top + row - 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
