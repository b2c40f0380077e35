"""Contact sheets of an audit: a PNG grid of the most suspicious faces flagged for one reason.

Each face (duplicates: the pair side by side) is captioned with its id, split, label(s) and score,
one short line each; a line too wide for its cell is shortened from the left (``...00019.png``,
the end of a path names the file), so that no caption runs into its neighbour's.
"""

from __future__ import annotations

import numpy as np

from .audit import DUPLICATE_REASONS, AuditReport, Finding, ordered

#: Faces per contact sheet (duplicate pairs count once).
SHEET_CAP = 100
TILE = 96                      # side of a face on the sheet, pixels
GAP = 6                        # white space between two cells
LINE = 12                      # height of a caption line
FONT_SCALE = 0.3


def text_width(text: str) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)[0][0]


def fit(text: str, width: int) -> str:
    """``text``, or its end after "..." when it is wider than ``width`` pixels."""
    if text_width(text) <= width:
        return text
    for start in range(1, len(text)):
        short = "..." + text[start:]
        if text_width(short) <= width:
            return short
    return ""


def caption(report: AuditReport, f: Finding, ids: np.ndarray) -> list[str]:
    """The caption lines of finding ``f``: id and split (the pair's too), label(s), score (and the
    suggested class of a label issue)."""
    ds = report.dataset
    if f.reason in DUPLICATE_REASONS and f.pair is not None:
        return [f"{ids[f.row]} {ds.splits[f.row][:5]}", f"= {ids[f.pair]} {ds.splits[f.pair][:5]}",
                f"{f.label} / {ds.class_names[ds.labels[f.pair]]}  d={f.score:g}"]
    score = f"> {f.suggested} {f.score:.3f}" if f.suggested else f"{f.score:.3f}"
    return [str(ids[f.row]), f"{ds.splits[f.row][:5]} {f.label}", score]


def contact_sheet_png(report: AuditReport, reason: str, cap: int = SHEET_CAP) -> bytes | None:
    """A PNG grid of the ``cap`` most suspicious faces flagged for ``reason`` (duplicates: the pair
    side by side), each captioned (:func:`caption`) within its own cell; None when none was flagged."""
    import cv2

    ds = report.dataset
    _, ids = report.ids()
    chosen = [f for f in ordered(report.findings) if f.reason == reason][:cap]
    if not chosen:
        return None
    pairs = reason in DUPLICATE_REASONS
    per_row = 5 if pairs else 10
    cell_w = (2 * TILE + 4) if pairs else TILE
    captions = [caption(report, f, ids) for f in chosen]
    band = TILE + LINE * max(len(c) for c in captions) + 4
    n_rows = -(-len(chosen) // per_row)
    sheet = np.full((n_rows * band, per_row * (cell_w + GAP)), 255, np.uint8)

    def face(i: int) -> np.ndarray:
        return cv2.resize(ds.images[i], (TILE, TILE), interpolation=cv2.INTER_CUBIC)

    for k, (f, lines) in enumerate(zip(chosen, captions)):
        r, c = divmod(k, per_row)
        y, x = r * band, c * (cell_w + GAP)
        sheet[y:y + TILE, x:x + TILE] = face(f.row)
        if pairs and f.pair is not None:
            sheet[y:y + TILE, x + TILE + 4:x + 2 * TILE + 4] = face(f.pair)
        for line, text in enumerate(lines):
            cv2.putText(sheet, fit(text, cell_w - 2), (x + 1, y + TILE + 11 + LINE * line), cv2.FONT_HERSHEY_SIMPLEX,
                        FONT_SCALE, 0, 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", sheet)
    return png.tobytes()
