"""Image folders: ``ROOT/<split>/<class>/*`` or ``ROOT/<class>/*``, and the image reading every
file-based reader (RAF-DB, image-list CSV) shares.

This is the Kaggle image layout of FER-2013 (``train/angry/...``, ``test/happy/...``) and the
usual AffectNet / RAF-DB layout. Class folder names are mapped to the canonical names
(``anger`` -> ``angry``, ``Happiness`` -> ``happy``, ``3_happy`` -> ``happy``). Images are read
as grey and resized to ``size`` x ``size``. An unreadable image (damaged, empty, a broken
symbolic link or a symbolic link loop) is skipped, counted and named in the warning (or raises
when ``strict``); the readable ones are still read.
"""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import ALIASES, FER2013_CLASSES, FERPLUS_CLASSES
from ..errors import DataError
from .dataset import FaceDataset
from .labels import NAMES_ONLY, ClassMap

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
FLAT_SPLIT = "all"


def _images_in(folder: Path) -> list[Path]:
    """Image files under ``folder``, and image-named symbolic links that lead nowhere (so that they
    are reported, not silently left out). Linked folders are not followed (no loops)."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink()))


#: Skipped files named in the warning (the count covers them all).
NAMED_IN_WARNING = 10


def _why_unreadable(path: Path, error: Exception) -> str:
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "symbolic link loop"
        return f"broken symbolic link to {os.readlink(path)}"
    return f"unreadable image ({type(error).__name__}: {error})"


def _class_order(names: set[str]) -> tuple[str, ...]:
    """Canonical order: FER-2013's, then contempt (FER+), then any other in alphabetical order."""
    order = list(FER2013_CLASSES) + [c for c in FERPLUS_CLASSES if c not in FER2013_CLASSES]
    known = [c for c in order if c in names]
    return tuple(known + sorted(names - set(known)))


def _load_grey(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                top = max(float(arr.max()), 1.0)
                im = Image.fromarray((arr / top * 255).astype(np.uint8))
            grey = im.convert("L")
            if grey.size != (size, size):
                grey = grey.resize((size, size), Image.BILINEAR)
            return np.asarray(grey, dtype=np.uint8)


def _hint(class_map: ClassMap) -> str:
    return class_map.hint(f"known names: {', '.join(sorted(ALIASES))}; number folders need --class-map")


def class_folders(folder: Path, class_map: ClassMap = NAMES_ONLY) -> list[Path]:
    """The class folders directly inside ``folder`` (hidden ones left out), in name order; a folder
    whose name is no expression class (read through ``class_map``) is an error naming the fix."""
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in dirs if not class_map.knows(p.name)]
    if unknown:
        raise DataError(f"{folder}: folder(s) {', '.join(unknown)} are not expression classes ({_hint(class_map)})")
    return dirs


def read_image_folder(root: str | Path, size: int = 48, strict: bool = False,
                      class_map: ClassMap = NAMES_ONLY) -> FaceDataset:
    """Read an image folder of face crops into a :class:`FaceDataset`.

    ``class_map`` names numbered class folders (``1/``, ``2/``...; see :mod:`emolens.data.labels`).
    A class folder without images is an error: it is a class the model would be asked to learn
    from nothing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root}: no class folders inside (expected ROOT/<class>/* or ROOT/<split>/<class>/*)")
    if all(class_map.knows(d.name) for d in subdirs):
        layout = [(FLAT_SPLIT, d) for d in subdirs]
    else:
        layout = []
        for split_dir in subdirs:
            class_dirs = class_folders(split_dir, class_map)
            if not class_dirs and any(p.suffix.lower() in IMAGE_SUFFIXES for p in split_dir.iterdir()):
                raise DataError(f"{split_dir}: holds images but {split_dir.name!r} is not an expression class "
                                f"({_hint(class_map)})")
            layout += [(split_dir.name, d) for d in class_dirs]
    per_folder = [(split, d, _images_in(d)) for split, d in layout]
    if not any(files for _, _, files in per_folder):
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    empty = [d for _, d, files in per_folder if not files]
    if empty:
        raise DataError(f"{empty[0]}: class folder holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                        + (f"; {len(empty) - 1} more empty class folder(s)" if len(empty) > 1 else ""))
    entries = [LabelledFile(split, class_map.lookup(d.name), f) for split, d, files in per_folder for f in files]
    return read_labelled_images(entries, root, size, strict)


@dataclass(frozen=True)
class LabelledFile:
    """One image file to read: its split, its canonical class and where it is."""

    split: str
    label: str
    path: Path


def read_labelled_images(entries: list[LabelledFile], root: Path, size: int = 48, strict: bool = False,
                         source: str | None = None) -> FaceDataset:
    """Read listed image files (from a folder layout, a label file or a CSV) into a :class:`FaceDataset`.

    Unreadable images are skipped, counted and named in one warning (or raise when ``strict``).
    Paths are stored relative to ``root``.
    """
    source = source or str(root)
    classes = _class_order({e.label for e in entries})
    images, labels, splits, paths = [], [], [], []
    bad: list[str] = []
    for entry in entries:
        try:
            images.append(_load_grey(entry.path, size))
        except Exception as e:  # PIL raises many types for broken files
            if strict:
                raise DataError(f"{entry.path}: {_why_unreadable(entry.path, e)}") from None
            bad.append(f"{entry.path}: {_why_unreadable(entry.path, e)}")
            continue
        labels.append(classes.index(entry.label))
        splits.append(entry.split)
        paths.append(_relative(entry.path, root))
    if bad:
        more = len(bad) - NAMED_IN_WARNING
        warnings.warn(f"{source}: skipped {len(bad)} unreadable image(s): " + "; ".join(bad[:NAMED_IN_WARNING])
                      + (f"; and {more} more" if more > 0 else ""), stacklevel=3)
    if not images:
        raise DataError(f"{source}: none of the {len(entries)} image files could be read")
    return FaceDataset(
        images=np.stack(images), labels=np.array(labels, dtype=np.int64), splits=np.array(splits),
        class_names=classes, source=source, dropped={"unreadable image": len(bad)} if bad else {},
        paths=np.array(paths),
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # a CSV may list files outside its own folder
        return path.as_posix()
