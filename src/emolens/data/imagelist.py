"""A CSV that lists face crops: ``path,label[,split]`` per row (AffectNet-style annotations).

Paths are relative to the CSV's folder (or absolute). A header row is optional; with one, the
columns are found by name (``path`` / ``image`` / ``file`` / ``subDirectory_filePath``, ``label`` /
``expression`` / ``emotion`` / ``class``, ``split`` / ``usage``), so AffectNet's own annotation
files read with ``--class-map affectnet``. Rows without a split column form one split, from which
training holds out a validation part (``--val-fraction``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import DataError
from .dataset import FaceDataset
from .folders import FLAT_SPLIT, IMAGE_SUFFIXES, LabelledFile, read_labelled_images
from .labels import NAMES_ONLY, ClassMap
from .text import open_text

PATH_COLUMNS = ("path", "image", "file", "filename", "image_path", "subdirectory_filepath")
LABEL_COLUMNS = ("label", "expression", "emotion", "class")
SPLIT_COLUMNS = ("split", "usage", "set")


def is_image_list(path: Path) -> bool:
    """A .csv whose first row is a header naming a path column, or whose first field is an image file."""
    if not (path.is_file() and path.name.lower().endswith(".csv")):
        return False
    with open_text(path) as f:
        first = next(csv.reader(f), [])
    if not first:
        return False
    lower = [c.strip().lower() for c in first]
    return any(c in PATH_COLUMNS for c in lower) or Path(lower[0]).suffix in IMAGE_SUFFIXES


def _columns(header: list[str], path: Path) -> tuple[int, int, int | None]:
    lower = [c.strip().lower() for c in header]

    def find(names: tuple[str, ...]) -> int | None:
        return next((i for i, c in enumerate(lower) if c in names), None)

    p, label, split = find(PATH_COLUMNS), find(LABEL_COLUMNS), find(SPLIT_COLUMNS)
    if p is None or label is None:
        raise DataError(f"{path}: line 1: the header needs a path column ({', '.join(PATH_COLUMNS)}) and a label "
                        f"column ({', '.join(LABEL_COLUMNS)}); found {', '.join(header)}")
    return p, label, split


def read_image_list(path: str | Path, size: int = 48, strict: bool = False,
                    class_map: ClassMap = NAMES_ONLY) -> FaceDataset:
    """Read the images a ``path,label[,split]`` CSV lists; errors name the CSV's line."""
    path = Path(path)
    with open_text(path) as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: the file is empty")
    start = 0
    columns: tuple[int, int, int | None] = (0, 1, 2)
    if Path(rows[0][0].strip()).suffix.lower() not in IMAGE_SUFFIXES:
        columns, start = _columns(rows[0], path), 1
    p_col, l_col, s_col = columns
    needed = max(p_col, l_col) + 1
    base = path.parent
    entries: list[LabelledFile] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        if not any(field.strip() for field in row):
            continue
        where = f"{path}: line {number}"
        if len(row) < needed or not row[p_col].strip() or not row[l_col].strip():
            raise DataError(f"{where}: expected path,label[,split], got {','.join(row)!r} (a field is missing)")
        image = Path(row[p_col].strip())
        image = image if image.is_absolute() else base / image
        label = row[l_col].strip()
        try:
            cls = class_map.lookup(label)
        except DataError:
            known = class_map.hint("labels must be class names, or numbers with --class-map")
            raise DataError(f"{where}: unknown label {label!r} ({known})") from None
        split = row[s_col].strip() if s_col is not None and s_col < len(row) and row[s_col].strip() else FLAT_SPLIT
        if not image.exists() and not image.is_symlink():
            raise DataError(f"{where}: no image {image}")
        entries.append(LabelledFile(split, cls, image))
    if not entries:
        raise DataError(f"{path}: no data rows")
    return read_labelled_images(entries, base, size, strict, source=str(path))
