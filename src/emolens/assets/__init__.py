"""Public-domain demo images shipped with emolens (see README.md beside this file), and test frames
built from them. Never FER data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

#: Eileen Collins, NASA portrait (public domain), as shipped by scikit-image (``astronaut.png``).
ASTRONAUT = HERE / "astronaut.jpg"


def astronaut() -> np.ndarray:
    """The astronaut portrait as an RGB uint8 array (512, 512, 3); one face, upright."""
    from ..vision.images import read_image

    return read_image(ASTRONAUT)


def face_frame(n_faces: int = 1, size: tuple[int, int] = (640, 480), offset: tuple[int, int] = (0, 0),
               background: int = 96) -> np.ndarray:
    """An RGB frame ``size`` = (width, height) with ``n_faces`` copies of the astronaut's head.

    Head-and-shoulder crops of the portrait, scaled to fit, side by side (up to 5 in a row, then
    more rows); one face fills most of the frame's height. ``offset`` (dx, dy) shifts every face,
    to make a moving synthetic video.
    """
    import cv2

    width, height = size
    frame = np.full((height, width, 3), background, np.uint8)
    if n_faces <= 0:
        return frame
    head = astronaut()[20:300, 110:390]              # 280x280 around the face
    per_row = min(n_faces, 5)
    rows = -(-n_faces // per_row)
    cell_w, cell_h = width // per_row, height // rows
    side = min(cell_w, cell_h) - 8
    tile = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
    dx, dy = offset
    for i in range(n_faces):
        r, c = divmod(i, per_row)
        _paste(frame, tile, c * cell_w + (cell_w - side) // 2 + dx, r * cell_h + (cell_h - side) // 2 + dy)
    return frame


def _paste(frame: np.ndarray, tile: np.ndarray, x: int, y: int) -> None:
    """Copy ``tile`` into ``frame`` at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    th, tw = tile.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + tw, w), min(y + th, h)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = tile[y0 - y:y1 - y, x0 - x:x1 - x]
