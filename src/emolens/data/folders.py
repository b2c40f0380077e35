"""Image folders: ``ROOT/<split>/<class>/*`` or ``ROOT/<class>/*``.

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
from pathlib import Path

import numpy as np

from ..classes import ALIASES, FER2013_CLASSES, FERPLUS_CLASSES, canonical_name
from ..errors import DataError
from .dataset import FaceDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
FLAT_SPLIT = "all"


def _is_class_dir(path: Path) -> bool:
    try:
        canonical_name(path.name)
        return True
    except DataError:
        return False


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


def read_image_folder(root: str | Path, size: int = 48, strict: bool = False) -> FaceDataset:
    """Read an image folder of face crops into a :class:`FaceDataset`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root}: no class folders inside (expected ROOT/<class>/* or ROOT/<split>/<class>/*)")
    if all(_is_class_dir(d) for d in subdirs):
        layout = [(FLAT_SPLIT, d) for d in subdirs]
    else:
        layout = []
        for split_dir in subdirs:
            class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
            unknown = [p.name for p in class_dirs if not _is_class_dir(p)]
            if unknown:
                raise DataError(f"{split_dir}: folder(s) {', '.join(unknown)} are not expression classes "
                                f"(known names: {', '.join(sorted(ALIASES))})")
            layout += [(split_dir.name, d) for d in class_dirs]
    entries = [(split, canonical_name(d.name), f) for split, d in layout for f in _images_in(d)]
    if not entries:
        raise DataError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = _class_order({c for _, c, _ in entries})
    images, labels, splits, paths = [], [], [], []
    bad: list[str] = []
    for split, cls, path in entries:
        try:
            images.append(_load_grey(path, size))
        except Exception as e:  # PIL raises many types for broken files
            if strict:
                raise DataError(f"{path}: {_why_unreadable(path, e)}") from None
            bad.append(f"{path}: {_why_unreadable(path, e)}")
            continue
        labels.append(classes.index(cls))
        splits.append(split)
        paths.append(path.relative_to(root).as_posix())
    if bad:
        more = len(bad) - NAMED_IN_WARNING
        warnings.warn(f"{root}: skipped {len(bad)} unreadable image(s): " + "; ".join(bad[:NAMED_IN_WARNING])
                      + (f"; and {more} more" if more > 0 else ""), stacklevel=2)
    if not images:
        raise DataError(f"{root}: none of the {len(entries)} image files could be read")
    return FaceDataset(
        images=np.stack(images), labels=np.array(labels, dtype=np.int64), splits=np.array(splits),
        class_names=classes, source=str(root), dropped={"unreadable image": len(bad)} if bad else {},
        paths=np.array(paths),
    )
