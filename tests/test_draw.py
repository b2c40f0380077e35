"""Annotations read well (checked on the drawn pixels): text black or white by the colour behind it
(never white on yellow), the label once (the bars show the next classes), labels inside the image."""

from __future__ import annotations

import numpy as np

from emolens.vision.draw import COLOURS, annotate
from emolens.vision.results import FaceResult, FrameResult

H, W = 480, 640


def face(label: str, probabilities: dict, box=(260, 180, 380, 300)) -> FrameResult:
    return FrameResult([FaceResult(box=box, score=0.99, label=label, confidence=probabilities[label],
                                   probabilities=probabilities)], W, H)


def drawn(frame: FrameResult, top_k: int = 3) -> np.ndarray:
    return annotate(np.full((H, W, 3), 96, np.uint8), frame, top_k=top_k)


def mask_of(img: np.ndarray, bgr) -> np.ndarray:
    return np.all(img == np.array(bgr, np.uint8), axis=2)


def region_of(mask: np.ndarray) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def text_pixels(img: np.ndarray, region, background) -> np.ndarray:
    """Brightness (B+G+R) of the pixels of ``region`` that differ from its ``background`` colour:
    the text written on it (anti-aliased: blends of the text's colour and the background's)."""
    part = img[region]
    return part[~np.all(part == np.array(background, np.uint8), axis=2)].astype(int).sum(axis=1)


def dark_text_on(img, region, background) -> bool:
    text, behind = text_pixels(img, region, background), sum(background)
    return len(text) > 10 and text.max() <= behind and text.min() < 150


def light_text_on(img, region, background) -> bool:
    text, behind = text_pixels(img, region, background), sum(background)
    return len(text) > 10 and text.min() >= behind and text.max() > 650


def test_dark_text_on_yellow_and_light_text_on_red():
    probs = {"happy": 0.5, "neutral": 0.1, "angry": 0.4}
    img = drawn(face("happy", probs))
    label = mask_of(img, COLOURS["happy"])
    label[180 - 3:, :] = False                                   # the label above the box, not the box itself
    assert dark_text_on(img, region_of(label), COLOURS["happy"])     # no white on yellow

    img = drawn(face("angry", {"angry": 0.6, "happy": 0.3, "neutral": 0.1}))
    label = mask_of(img, COLOURS["angry"])
    label[180 - 3:, :] = False
    assert light_text_on(img, region_of(label), COLOURS["angry"])    # light text on dark red


def test_a_bar_in_yellow_gets_dark_text():
    # neutral is the label; happy's bar (yellow, 45% filled) carries text over its yellow part
    img = drawn(face("neutral", {"neutral": 0.5, "happy": 0.45, "sad": 0.05}))
    yellow = mask_of(img, COLOURS["happy"])
    assert yellow.any(), "happy's bar is drawn"
    assert dark_text_on(img, region_of(yellow), COLOURS["happy"])


def test_the_label_is_shown_once():
    # with the label's probability in the label, the bars are the next classes: two bars (top 3
    # shown), surprise then sad; none in happy's yellow. Column x1 of a bar is its fill colour.
    img = drawn(face("happy", {"happy": 0.7, "surprise": 0.2, "sad": 0.06, "neutral": 0.04}, box=(260, 100, 380, 220)))
    column = [tuple(int(v) for v in px) for px in img[224:, 260]]
    fills = [c for i, c in enumerate(column) if c != (96, 96, 96) and (i == 0 or c != column[i - 1])]
    assert fills == [COLOURS["surprise"], COLOURS["sad"]], fills


def label_columns(img: np.ndarray, col, keep) -> slice:
    """The columns of the label's solid background: ``col`` pixels where ``keep`` (a mask) is true."""
    mask = mask_of(img, col) & keep
    return region_of(mask)[1]


def test_labels_at_the_edges_are_whole():
    probs = {"surprise": 0.8, "happy": 0.15, "neutral": 0.05}
    above = np.zeros((H, W), bool)
    above[:170] = True                                            # above the middle box's outline
    width = label_columns(drawn(face("surprise", probs)), COLOURS["surprise"], above)
    width = width.stop - width.start
    # a face in the top right corner: the label cannot go above it nor start at its left edge
    corner = np.ones((H, W), bool)
    corner[:54, W - 43:] = False                                 # leave out the box and its outline
    cols = label_columns(drawn(face("surprise", probs, box=(W - 40, 0, W, 50))), COLOURS["surprise"], corner)
    assert cols.stop - cols.start == width and cols.stop <= W      # the whole label, nothing cut
    # a face as large as the picture (a pre-cropped face): the label inside it at its top, not below the
    # picture; its bars under it
    whole = mask_of(drawn(face("surprise", probs, box=(0, 0, W, H))), COLOURS["surprise"])
    whole[:4] = whole[H - 4:] = False                              # the box's top and bottom outline
    rows = np.flatnonzero(whole[:, :W // 2].sum(axis=1) > 10)      # the label's rows (not the side outlines)
    assert len(rows) > 10 and rows.max() < H // 4
    cols = region_of(whole[rows, :W // 2])[1]
    assert cols.stop - cols.start == width
    assert mask_of(drawn(face("surprise", probs, box=(0, 0, W, H))), COLOURS["happy"])[:H // 4].any()
