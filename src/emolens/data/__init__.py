"""Data set readers, class sets and balancing. :func:`load_dataset` picks the reader for a path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import DataError
from .dataset import FaceDataset


def load_dataset(paths: str | Path | Sequence[str | Path], ferplus: str | Path | None = None,
                 classes: str | Sequence[str] | None = None, strict: bool = False,
                 fer2013_label_weight: float = 0.0, class_map=None) -> FaceDataset:
    """Read one data set, or mix several into one class set.

    A path may be a FER-2013 csv (plain or .gz), a folder holding one, an image folder
    (``ROOT/<split>/<class>/*`` or ``ROOT/<class>/*``), a RAF-DB basic folder (``Image/`` +
    ``EmoLabel/list_patition_label.txt``) or a CSV listing images (``path,label[,split]``).
    ``class_map`` (``1=surprise,...``, a YAML file or a preset name; see :mod:`.labels`) names
    numbered labels; RAF-DB's own numbering is the default for RAF-DB. ``ferplus`` (votes file)
    applies to a FER-2013 csv. ``classes`` keeps a class subset (e.g. ``basic5`` or ``angry,happy``).
    ``fer2013_label_weight``: with ``ferplus``, the share of each face's FER-2013 label in its soft
    label (training on both label sets; see :func:`emolens.data.ferplus.read_ferplus`).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise DataError("no data set path given")
    if ferplus and len(paths) > 1:
        raise DataError("--ferplus applies to a single FER-2013 csv, not to a mix")
    datasets = [_read_one(Path(p), ferplus, strict, fer2013_label_weight, class_map) for p in paths]
    if len(datasets) == 1:
        ds = datasets[0]
        return ds.with_classes(classes) if classes else ds
    from .mix import mix

    return mix(datasets, classes)


def _is_fer_csv(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".csv") or name.endswith(".csv.gz"))


def _read_one(path: Path, ferplus, strict: bool, fer2013_label_weight: float = 0.0, class_map=None) -> FaceDataset:
    from .labels import parse_class_map

    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    csv_path = path
    if path.is_dir():
        inside = [path / n for n in ("fer2013.csv", "fer2013.csv.gz") if (path / n).exists()]
        csv_path = inside[0] if inside else None
    if csv_path is not None and _is_fer_csv(csv_path):
        from .imagelist import is_image_list, read_image_list

        if is_image_list(csv_path):
            if ferplus:
                raise DataError(f"--ferplus needs a FER-2013 csv, but {path} lists image files")
            return read_image_list(csv_path, strict=strict, class_map=parse_class_map(class_map))
        if class_map:
            raise DataError(f"--class-map does not apply to {csv_path}: a FER-2013 csv's labels are its own 0..6")
        if ferplus:
            from .ferplus import read_ferplus

            return read_ferplus(csv_path, ferplus, fer2013_label_weight=fer2013_label_weight)
        from .fer2013 import read_fer2013

        return read_fer2013(csv_path)
    if ferplus:
        raise DataError(f"--ferplus needs a FER-2013 csv, but {path} is an image folder")
    if path.is_dir():
        from .rafdb import is_rafdb, read_rafdb

        if is_rafdb(path):
            return read_rafdb(path, strict=strict, class_map=parse_class_map(class_map, default="rafdb"))
        from .folders import read_image_folder

        return read_image_folder(path, strict=strict, class_map=parse_class_map(class_map))
    raise DataError(f"{path}: not a FER-2013 csv (.csv / .csv.gz), an image-list csv, nor an image folder")


__all__ = ["FaceDataset", "load_dataset"]
