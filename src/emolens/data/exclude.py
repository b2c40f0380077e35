"""``emolens train --exclude FILE``: leave out of training the rows a data audit flagged.

The file is ``emolens data audit``'s ``flagged.csv`` (or any csv with the same id column): rows are
named by ``row_id`` (position in a FER-2013 csv, 0 = first data row) or ``path`` (relative to an
image folder's root), as :func:`emolens.data.audit.row_identity` names them. Only the training
split loses rows; the validation split is never changed, so accuracies stay comparable. Rows the
audit marked ``default_exclude`` = ``no`` (findings of a check it found unreliable) are held back
unless ``--exclude-reasons`` names their reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .audit import DEFAULT_EXCLUDE, REASONS, row_identity
from .dataset import FaceDataset
from .text import open_text


@dataclass
class Exclusions:
    """The ids an exclusion file names (with the line each is first named on), for the chosen reasons."""

    path: Path
    column: str                       # "row_id" or "path"
    lines: dict                       # id -> line number in the file
    held_back: dict = field(default_factory=dict)   # reason -> rows not excluded by default (audit: unreliable)

    @property
    def ids(self) -> list:
        return list(self.lines)

    def describe_held_back(self) -> str:
        """What the default left in, and how to exclude it too; empty when nothing was held back."""
        if not self.held_back:
            return ""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.held_back.items()))
        reasons = ",".join(r for r in REASONS if r in self.held_back)
        return (f"kept {parts} row(s) the audit found unreliable; --exclude-reasons naming {reasons} "
                "excludes them too")


def parse_reasons(reasons: str | Sequence[str] | None) -> list[str] | None:
    """``"no_face,label_issue"`` -> a checked list; None = every reason."""
    if reasons is None or reasons == "":
        return None
    wanted = [r.strip() for r in reasons.split(",")] if isinstance(reasons, str) else list(reasons)
    unknown = [r for r in wanted if r not in REASONS]
    if unknown:
        raise DataError(f"unknown exclusion reason(s) {', '.join(unknown)}; choose from {', '.join(REASONS)}")
    return wanted


def read_exclusions(path: str | Path, reasons: str | Sequence[str] | None = None) -> Exclusions:
    """Read an exclusion file; ``reasons`` keeps only rows flagged for those reasons (needs a reason column);
    without ``reasons``, rows whose ``default_exclude`` is ``no`` are held back (counted, not excluded)."""
    path = Path(path)
    wanted = parse_reasons(reasons)
    try:
        handle = open_text(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read the exclusion file ({e.strerror or e})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        column = next((c for c in ("row_id", "path") if c in header), None)
        if column is None:
            raise DataError(f"{path}: an exclusion file needs a row_id or path column; header is {', '.join(header) or 'empty'}")
        if wanted is not None and "reason" not in header:
            raise DataError(f"{path}: --exclude-reasons needs a reason column; header is {', '.join(header)}")
        lines: dict = {}
        held_back: dict = {}
        for row in reader:
            line = reader.line_num
            reason = (row.get("reason") or "").strip()
            if wanted is not None and reason not in wanted:
                continue
            if wanted is None and (row.get(DEFAULT_EXCLUDE) or "").strip() == "no":
                held_back[reason] = held_back.get(reason, 0) + 1
                continue
            value = (row.get(column) or "").strip()
            if column == "row_id":
                if not value.isdigit():
                    raise DataError(f"{path}: line {line}, field row_id: {value!r} is not a row number")
                value = int(value)
            elif not value:
                raise DataError(f"{path}: line {line}, field path: empty")
            lines.setdefault(value, line)
    return Exclusions(path, column, lines, held_back)


def apply_exclusions(train: FaceDataset, full: FaceDataset, path: str | Path | Exclusions, reasons=None,
                     raw: FaceDataset | None = None) -> tuple[FaceDataset, int]:
    """``train`` without the rows the file names (``path``, or it read already by :func:`read_exclusions`),
    and how many it lost.

    Every id must be a row of the data set: of ``full`` (all splits as loaded) or else of ``raw``
    (the file as read, before class subsets and FER+ drops; give it when ``full`` is filtered),
    otherwise a one-line error names the file, line and id."""
    ex = path if isinstance(path, Exclusions) else read_exclusions(path, reasons)
    column, train_ids = row_identity(train)
    if ex.column != column:
        raise DataError(f"{ex.path}: names rows by {ex.column}, but {full.source} names them by {column} "
                        "(an audit of another data set?)")
    known = set(row_identity(full)[1].tolist())
    missing = [i for i in ex.ids if i not in known]
    if missing and raw is not None:
        known |= set(row_identity(raw)[1].tolist())
        missing = [i for i in missing if i not in known]
    if missing:
        first = min(missing, key=ex.lines.get)
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{ex.path}: line {ex.lines[first]}: {column} {first} is not a row of {full.source}{more}")
    drop = np.isin(train_ids, np.array(ex.ids, dtype=train_ids.dtype)) if ex.ids else np.zeros(len(train), bool)
    return train.select(~drop), int(drop.sum())
