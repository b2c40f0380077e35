"""Draw results on an image: a box per face in its label's colour, the label (and track id) with
its probability, bars for the next most probable classes, and the landmarks. Works on BGR images
(OpenCV's order), in place. Text is black or white, whichever reads better on the colour behind
it, and every label stays inside the image."""

from __future__ import annotations

import numpy as np

from .results import UNCERTAIN, FrameResult

#: BGR colour per canonical class name; other names get a colour from their hash.
COLOURS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 250),
    "sad": (200, 110, 30), "surprise": (0, 140, 255), "neutral": (190, 190, 190), "contempt": (120, 120, 40),
    UNCERTAIN: (128, 128, 128),
}
BLACK, WHITE = (0, 0, 0), (255, 255, 255)
#: The bars' background (the part of a bar its probability does not fill).
BAR_BACKGROUND = (40, 40, 40)


def colour(label: str) -> tuple[int, int, int]:
    if label in COLOURS:
        return COLOURS[label]
    h = sum(map(ord, label)) * 2654435761 % 2**24
    return (h & 255, (h >> 8) & 255, (h >> 16) & 255)


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever contrasts more with the BGR ``background`` (WCAG relative
    luminance: black above 0.179): black on yellow, orange and grey, white on red, blue and green."""
    linear = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in background]
    b, g, r = linear
    return BLACK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else WHITE


def annotate(bgr: np.ndarray, frame: FrameResult, top_k: int = 3, landmarks: bool = True) -> np.ndarray:
    """Draw ``frame``'s faces on ``bgr`` (H, W, 3) uint8, in place; returns it. Each face shows
    ``top_k`` probabilities: its label's in the label, the next ones as bars."""
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
                cv2.circle(bgr, (int(x), int(y)), thick, WHITE, -1, cv2.LINE_AA)
        ranked = face.top(max(top_k, 1))
        head = f"{face.label} {face.confidence:.0%}"
        if face.label == UNCERTAIN:                   # say what it leans to: "uncertain (happy 41%)"
            head = f"{UNCERTAIN} ({ranked[0][0]} {face.confidence:.0%})"
        if face.track_id is not None:
            head = f"#{face.track_id} {head}"
        scale = 0.5 * unit
        (tw, th), base = cv2.getTextSize(head, font, scale, thick)
        box_w, box_h = tw + 4, th + base
        inside = False
        if y1 - box_h - 4 >= 0:                                     # above the box
            ty = y1 - 4
        elif y2 + th + 4 + base < h:                                # else below it
            ty = y2 + th + 4
        else:                                                       # else inside it, at its top (a face
            ty, inside = max(y1, 0) + th + thick + 2, True          # as large as the picture: a crop)
        lx = int(np.clip(x1, 0, max(0, w - box_w - 1)))             # never past the left or right edge
        cv2.rectangle(bgr, (lx, ty - th - base), (lx + box_w, ty + base), col, -1)
        cv2.putText(bgr, head, (lx + 2, ty), font, scale, text_colour(col), max(1, thick - 1), cv2.LINE_AA)
        bar_w = max(x2 - x1, int(90 * unit)) if not inside else max(box_w, int(90 * unit))
        bar_x = int(np.clip(x1 if not inside else lx, 0, max(0, w - bar_w - 1)))
        _bars(bgr, ranked[1:top_k], bar_x, (ty + base if inside else max(y2, ty + base)) + 4, bar_w, unit)
    return bgr


def _bars(bgr: np.ndarray, items: list[tuple[str, float]], x: int, y: int, width: int, unit: float) -> None:
    """Small horizontal bars, one per (class, probability), below a face. The text is written on
    the dark background and again, clipped, on the part its probability fills, each in the colour
    that reads on it."""
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.38 * unit
    row = int(13 * unit)
    for i, (name, p) in enumerate(items):
        top = y + i * row
        if top + row > bgr.shape[0]:
            break
        text, fill = f"{name} {p:.2f}", colour(name)
        filled = int(width * p)
        cv2.rectangle(bgr, (x, top), (x + width, top + row - 2), BAR_BACKGROUND, -1)
        cv2.putText(bgr, text, (x + 2, top + row - 4), font, scale, text_colour(BAR_BACKGROUND), 1, cv2.LINE_AA)
        if filled > 0:
            part = bgr[top:top + row - 1, x:x + filled + 1]      # a view: drawing on it clips to the filled part
            part[:] = fill
            cv2.putText(part, text, (2, row - 4), font, scale, text_colour(fill), 1, cv2.LINE_AA)
