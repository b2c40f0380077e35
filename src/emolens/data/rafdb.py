"""RAF-DB basic, as distributed: ``Image/aligned/*.jpg`` (or ``Image/original``) and the label file
``EmoLabel/list_patition_label.txt`` (sic), one ``train_00001.jpg 5`` per line.

Labels 1..7 are surprise, fear, disgust, happiness, sadness, anger, neutral (the ``rafdb`` class
map, see :mod:`emolens.data.labels`); the split is the file name's prefix (``train`` / ``test``).
Aligned images carry an ``_aligned`` suffix (``train_00001_aligned.jpg``); the aligned 100x100
faces are used when present, since the classifier expects face crops.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .dataset import FaceDataset
from .folders import LabelledFile, read_labelled_images
from .labels import ClassMap, parse_class_map

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
SPLITS = ("train", "test")
IMAGE_FOLDERS = ("aligned", "original")


def is_rafdb(root: Path) -> bool:
    return root.is_dir() and (root / LABEL_FILE).is_file()


def _image_path(root: Path, folder: str, name: str) -> Path:
    if folder == "aligned":
        stem, suffix = name.rsplit(".", 1) if "." in name else (name, "jpg")
        return root / "Image" / "aligned" / f"{stem}_aligned.{suffix}"
    return root / "Image" / "original" / name


def read_rafdb(root: str | Path, size: int = 48, strict: bool = False, class_map: ClassMap | None = None,
               images: str | None = None) -> FaceDataset:
    """Read RAF-DB basic; ``images`` = ``aligned`` or ``original`` (default: aligned when present)."""
    root = Path(root)
    label_file = root / LABEL_FILE
    class_map = class_map if class_map is not None and class_map.mapping else parse_class_map(None, default="rafdb")
    if images is None:
        images = next((f for f in IMAGE_FOLDERS if (root / "Image" / f).is_dir()), None)
        if images is None:
            raise DataError(f"{root}: no Image/aligned or Image/original folder beside {LABEL_FILE}")
    elif images not in IMAGE_FOLDERS:
        raise DataError(f"RAF-DB images must be one of {', '.join(IMAGE_FOLDERS)}, not {images!r}")
    try:
        lines = label_file.read_text(encoding="utf-8-sig").splitlines()
    except OSError as e:
        raise DataError(f"{label_file}: cannot read ({e.strerror})") from None
    entries: list[LabelledFile] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{label_file}: line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise DataError(f"{where}: expected 'IMAGE LABEL' (train_00001.jpg 5), got {line.strip()!r}")
        name, label = fields
        split = name.split("_", 1)[0]
        if split not in SPLITS:
            raise DataError(f"{where}: {name}: the file name must start with train_ or test_")
        try:
            cls = class_map.lookup(label)
        except DataError:
            raise DataError(f"{where}: label {label!r} is not in the class map ({class_map.source}: "
                            f"{class_map.describe()})") from None
        path = _image_path(root, images, name)
        if not path.exists() and not path.is_symlink():
            raise DataError(f"{where}: no image {path} for {name}")
        entries.append(LabelledFile(split, cls, path))
    if not entries:
        raise DataError(f"{label_file}: no labelled images")
    return read_labelled_images(entries, root, size, strict)
