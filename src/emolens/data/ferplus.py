"""FER+ crowd votes (``fer2013new.csv``, Barsoum et al. 2016) joined to FER-2013 images.

Each row holds 10 votes over neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown and NF (not a face). Row *i* belongs to row *i* of ``fer2013.csv``: rows are
aligned by position, never by the ``Image name`` column (some names repeat).

The FER+ rule applied here: a row whose top vote is ``unknown`` or ``NF`` is dropped (ties go
to the earlier column, so a face class wins a tie against unknown/NF). A row with no votes at
all cannot be labelled: it is an error naming the file and row. The majority label is the
top-voted of the 8 expression classes; the soft label is the vote distribution over those 8
classes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..classes import FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS
from ..errors import DataError
from .dataset import FaceDataset
from .fer2013 import read_fer2013
from .text import open_text


def read_votes(path: str | Path) -> np.ndarray:
    """The (N, 10) vote counts of ``fer2013new.csv``, in :data:`FERPLUS_VOTE_COLUMNS` order."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    with open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: the file is empty (expected a header with {', '.join(FERPLUS_VOTE_COLUMNS)})") from None
        missing = [c for c in FERPLUS_VOTE_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing vote column(s) {', '.join(missing)}; header is {', '.join(header)}")
        idx = [header.index(c) for c in FERPLUS_VOTE_COLUMNS]
        votes = []
        for row_no, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: row {row_no} (line {reader.line_num}): expected {len(header)} fields, found {len(row)}")
            try:
                values = [float(row[i]) for i in idx]
            except ValueError:
                bad = next(FERPLUS_VOTE_COLUMNS[k] for k, i in enumerate(idx) if not _is_number(row[i]))
                raise DataError(f"{path}: row {row_no} (line {reader.line_num}), field {bad}: "
                                f"{row[header.index(bad)]!r} is not a number") from None
            if min(values) < 0:
                raise DataError(f"{path}: row {row_no} (line {reader.line_num}): vote counts cannot be negative")
            if sum(values) == 0:
                raise DataError(f"{path}: row {row_no} (line {reader.line_num}): no votes (all "
                                f"{len(values)} vote counts are 0), so the face has no label")
            votes.append(values)
    if not votes:
        raise DataError(f"{path}: the file has a header but no data rows")
    return np.array(votes, dtype=np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_ferplus(fer2013_path: str | Path, votes_path: str | Path, use_cache: bool = True,
                 fer2013_label_weight: float = 0.0) -> FaceDataset:
    """FER-2013 images with FER+ majority labels and soft labels, 8 classes, NF/unknown dropped.

    ``fer2013_label_weight`` w > 0 trains on both label sets of the same faces: each soft label
    becomes (1 - w) x the vote distribution + w x the face's original FER-2013 label (one-hot in
    the FER+ classes); the majority label stays the FER+ one."""
    base = read_fer2013(fer2013_path, use_cache=use_cache)
    votes = read_votes(votes_path)
    if len(votes) != len(base):
        raise DataError(f"{votes_path}: has {len(votes)} vote rows but {base.source} has {len(base)} image rows; "
                        "the files are aligned by row position and must have the same number of rows")
    n_classes = len(FERPLUS_CLASSES)
    top_any = votes.argmax(axis=1)
    is_unknown = top_any == FERPLUS_VOTE_COLUMNS.index("unknown")
    is_nf = top_any == FERPLUS_VOTE_COLUMNS.index("NF")
    keep = ~(is_unknown | is_nf)
    emotion_votes = votes[keep, :n_classes]
    soft = emotion_votes / emotion_votes.sum(axis=1, keepdims=True)
    if fer2013_label_weight:
        if not 0 <= fer2013_label_weight <= 1:
            raise DataError(f"fer2013_label_weight must lie in [0, 1], not {fer2013_label_weight}")
        to_ferplus = np.array([FERPLUS_CLASSES.index(c) for c in FER2013_CLASSES])
        original = np.eye(n_classes, dtype=np.float32)[to_ferplus[base.labels[keep]]]
        soft = (1 - fer2013_label_weight) * soft + fer2013_label_weight * original
    return FaceDataset(
        images=base.images[keep],
        labels=emotion_votes.argmax(axis=1).astype(np.int64),
        splits=base.splits[keep],
        class_names=FERPLUS_CLASSES,
        source=f"{base.source} + {votes_path}",
        soft_labels=soft.astype(np.float32),
        dropped={"not a face (NF)": int(is_nf.sum()), "unknown": int(is_unknown.sum())},
        row_ids=base.row_ids[keep],
    )
