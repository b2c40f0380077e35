"""FER-2013 in the Kaggle csv layout: columns ``emotion``, ``pixels``, ``Usage``.

``pixels`` holds 2,304 space-separated grey values (48x48, row-major). Any subset of the
three ``Usage`` values may be present. Plain and gzip-compressed files are read.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from . import cache
from ..classes import FER2013_CLASSES
from ..errors import DataError
from .dataset import FaceDataset
from .text import open_text

SIDE = 48
REQUIRED_COLUMNS = ("emotion", "pixels", "Usage")
KNOWN_USAGES = ("Training", "PublicTest", "PrivateTest")


def _parse(path: Path) -> dict[str, np.ndarray]:
    try:
        handle = open_text(path)
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: the file is empty (expected a header with {', '.join(REQUIRED_COLUMNS)})") from None
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: cannot read ({e})") from None
        names = [h.strip() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; header is {', '.join(names)}")
        i_emo, i_pix, i_use = (names.index(c) for c in REQUIRED_COLUMNS)
        labels: list[int] = []
        usages: list[str] = []
        rows: list[np.ndarray] = []
        n_pixels = SIDE * SIDE
        try:
            for row_no, row in enumerate(reader, start=1):
                where = f"{path}: row {row_no} (line {reader.line_num})"
                if len(row) != len(names):
                    if not any(cell.strip() for cell in row):
                        continue  # blank line
                    raise DataError(f"{where}: expected {len(names)} fields, found {len(row)}")
                emo = row[i_emo].strip()
                if not emo.isdigit() or int(emo) >= len(FER2013_CLASSES):
                    raise DataError(f"{where}, field emotion: {emo!r} is not a label in 0..{len(FER2013_CLASSES) - 1}")
                values = row[i_pix].split()
                if len(values) != n_pixels:
                    raise DataError(f"{where}, field pixels: expected {n_pixels} values, found {len(values)}")
                try:
                    pixels = np.array(values, dtype=np.int16)
                except ValueError:
                    bad = next(v for v in values if not v.lstrip("-").isdigit())
                    raise DataError(f"{where}, field pixels: {bad!r} is not a whole number") from None
                if pixels.min() < 0 or pixels.max() > 255:
                    raise DataError(f"{where}, field pixels: values must lie in 0..255")
                usage = row[i_use].strip()
                if usage not in KNOWN_USAGES:
                    raise DataError(f"{where}, field Usage: {usage!r} is not one of {', '.join(KNOWN_USAGES)}")
                labels.append(int(emo))
                usages.append(usage)
                rows.append(pixels.astype(np.uint8))
        except (OSError, EOFError, csv.Error) as e:
            raise DataError(f"{path}: cannot read past row {len(labels)} ({e})") from None
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    return {
        "images": np.stack(rows).reshape(-1, SIDE, SIDE),
        "labels": np.array(labels, dtype=np.int64),
        "splits": np.array(usages),
    }


def read_fer2013(path: str | Path, use_cache: bool = True) -> FaceDataset:
    """Read ``fer2013.csv`` or ``fer2013.csv.gz`` into a :class:`FaceDataset` (7 classes)."""
    path = Path(path)
    if path.is_dir():
        for name in ("fer2013.csv", "fer2013.csv.gz"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise DataError(f"{path}: no fer2013.csv or fer2013.csv.gz in this folder")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    arrays = None
    key = cache.file_hash(path) if use_cache else ""
    if use_cache:
        arrays = cache.load("fer2013", key)
    if arrays is None:
        arrays = _parse(path)
        if use_cache:
            cache.save("fer2013", key, arrays)
    return FaceDataset(
        images=arrays["images"],
        labels=arrays["labels"],
        splits=arrays["splits"].astype(str),
        class_names=FER2013_CLASSES,
        source=str(path),
        row_ids=np.arange(len(arrays["labels"]), dtype=np.int64),
    )
