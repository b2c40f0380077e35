"""``emolens evaluate --detect``: the whole pipeline (detect, align, classify) on uncropped photos
in class folders, so the number reflects what a user of ``emolens predict`` gets."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.folders import class_folders
from ..data.labels import NAMES_ONLY, ClassMap, parse_class_map
from ..errors import DataError, EmolensError
from ..models.weights import tta_mode
from ..vision.images import IMAGE_EXTENSIONS, read_image

#: Images whose faces are classified together.
BATCH = 64

#: Split folder names tried, in order, when no split is named.
TEST_SPLITS = ("test", "Test", "testing", "PrivateTest", "val", "valid", "validation", "PublicTest")


@dataclass
class LabelledImage:
    path: Path
    label: str                # canonical class name


def find_labelled_images(root: str | Path, split: str | None = None,
                         class_map: ClassMap = NAMES_ONLY) -> list[LabelledImage]:
    """Images under ROOT/<class>/* or ROOT/<split>/<class>/* (any depth below the class folder).

    With splits and no ``split`` named, the first of :data:`TEST_SPLITS` present is used. Folder
    names are read as class names (``Happiness`` -> ``happy``), or through ``class_map``
    (numbered folders: ``1/``, ``2/``...; see :mod:`emolens.data.labels`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of images (expected ROOT/<class>/* or ROOT/<split>/<class>/*)")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if split is not None:
        base = root / split
        if not base.is_dir():
            raise DataError(f"{root}: no split folder {split!r}; found {', '.join(p.name for p in subdirs) or 'none'}")
    elif subdirs and all(class_map.knows(p.name) for p in subdirs):
        base = root
    else:
        names = {p.name for p in subdirs}
        chosen = next((s for s in TEST_SPLITS if s in names), None)
        if chosen is None:
            raise DataError(f"{root}: neither class folders nor a test split ({', '.join(TEST_SPLITS[:4])}...); "
                            f"found {', '.join(sorted(names)) or 'no folders'}; "
                            + ("numbered class folders need --class-map" if any(n.isdigit() for n in names)
                               else "name one with --split"))
        base = root / chosen
    items = []
    for class_dir in class_folders(base, class_map):
        label = class_map.lookup(class_dir.name)
        items += [LabelledImage(f, label) for f in sorted(class_dir.rglob("*"))
                  if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise DataError(f"{base}: no images found in class folders")
    return items


def evaluate_detect(clf, data, detector: str | None = None, split: str | None = None, tta: bool | str | None = None,
                    margin: float | None = None, progress: bool = True, classes=None, class_map=None):
    """Detect, align and classify every image of the folder(s) ``data``; returns Metrics.

    Each image is labelled by its largest detected face. An image where no face is found counts
    as WRONG for accuracy (its prediction is "no face", never a class), so ``accuracy`` is the
    end-to-end rate a user sees; ``detection_rate`` is the share of images with a face. Classes the
    model lacks (or outside ``classes``) are left out and counted; the scores are
    :func:`emolens.evaluation.crossdata.score`'s (restricted argmax, subject-resampled intervals
    when a ``subjects.csv`` lies beside the class folders).
    ``metrics.extra`` holds detection_rate, n_images, n_no_face and n_unreadable (files that
    could not be read are reported on stderr and left out of every count). ``class_map`` names
    numbered class folders (``1=surprise,...``, a YAML file or a preset; :mod:`emolens.data.labels`).
    """
    from tqdm import tqdm

    from ..vision.align import DEFAULT_MARGIN
    from ..vision.detectors import create_detector
    from ..vision.pipeline import Pipeline
    from .crossdata import score, subject_groups

    roots = [data] if isinstance(data, (str, Path)) else list(data)
    items = [(Path(root), item) for root in roots for item in find_labelled_images(root, split, parse_class_map(class_map))]
    det = create_detector(detector)
    pipe = Pipeline(det, clf, DEFAULT_MARGIN if margin is None else margin, tta)
    n_classes = len(clf.classes)
    kept: list[tuple[Path, LabelledImage]] = []
    probs: list[np.ndarray] = []
    found: list[bool] = []
    unreadable = 0
    crops, crop_rows = [], []                        # largest-face crops, classified in batches
    for root, item in tqdm(items, desc="evaluate --detect", unit="img", disable=not progress, file=sys.stderr):
        try:
            rgb = read_image(item.path)
        except EmolensError as e:
            print(f"emolens: skipped {e}", file=sys.stderr)
            unreadable += 1
            continue
        kept.append((root, item))
        probs.append(np.zeros(n_classes, dtype=np.float32))   # "no face" unless a face is found
        found.append(False)
        dets = pipe.detector.detect(rgb)
        if dets:
            crops.append(pipe.crops(rgb, [max(dets, key=lambda d: d.area)]))
            crop_rows.append(len(probs) - 1)
            found[-1] = True
        if len(crops) >= BATCH:
            _classify(pipe, crops, crop_rows, probs)
    _classify(pipe, crops, crop_rows, probs)
    if not kept:
        raise DataError(f"no readable image in {', '.join(map(str, roots))}")
    groups = subject_groups(roots, [it.path.relative_to(root).as_posix() for root, it in kept])
    metrics = score(np.stack(probs), [it.label for _, it in kept], clf.classes, classes=classes, groups=groups,
                    found=np.array(found))
    n = len(kept)
    no_face = n - int(sum(found))
    metrics.extra.update({"model": clf.name, "detector": det.name, "split": split,
                          "tta": tta_mode(clf.spec.tta if tta is None else tta),
                          "detection_rate": (n - no_face) / n, "n_images": n, "n_no_face": no_face,
                          "n_unreadable": unreadable})
    return metrics


def _classify(pipe, crops: list, rows: list, probs_out: list) -> None:
    """Classify the pending crops in one call and write their probabilities; empties both lists."""
    if crops:
        probs = pipe.classifier.predict_proba(np.concatenate(crops), tta=pipe.tta)
        for row, p in zip(rows, probs):
            probs_out[row] = p
    crops.clear()
    rows.clear()
