"""Readers for the layouts users have (flat class folders, numbered folders with a class map, RAF-DB
basic, a path,label CSV), the seeded stratified validation split, and their one-line errors; all on
small PNG face crops written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_faces
from PIL import Image

from emolens.data import load_dataset
from emolens.data.labels import PRESET_CLASS_MAPS, parse_class_map
from emolens.data.splits import hold_out
from emolens.errors import DataError, EmolensError

RAF_ORDER = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")   # labels 1..7


def _save(path: Path, face: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(face).save(path)
    return path


def _flat_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> dict[str, list[np.ndarray]]:
    """ROOT/<class>/<i>.png with a class-specific bar in each face; returns the faces per class."""
    faces: dict[str, list[np.ndarray]] = {}
    for k, (cls, n) in enumerate(per_class.items()):
        images, _ = synthetic_faces(n * 7, seed=seed + k)
        faces[cls] = [images[i] for i in range(0, n * 7, 7)]
        for i, face in enumerate(faces[cls]):
            _save(root / cls / f"{i:03d}.png", face)
    return faces


def test_flat_folder_gets_a_seeded_stratified_validation_split(tmp_path):
    _flat_folder(tmp_path / "flat", {"happy": 30, "sad": 20, "neutral": 10})
    ds = load_dataset(tmp_path / "flat")
    assert ds.split_names == ["all"] and len(ds) == 60
    train, val = hold_out(ds, 0.1, seed=3)
    assert len(val) == 6 and len(train) == 54
    assert val.counts()["val"] == {"happy": 3, "sad": 2, "neutral": 1}       # stratified: 10% of each class
    assert set(train.paths) | set(val.paths) == set(ds.paths) and not set(train.paths) & set(val.paths)
    _, again_val = hold_out(ds, 0.1, seed=3)
    assert list(again_val.paths) == list(val.paths)                       # seeded: the same faces again
    assert list(hold_out(ds, 0.1, seed=4)[1].paths) != list(val.paths)


def test_val_fraction_that_leaves_a_class_without_validation_names_it(tmp_path):
    _flat_folder(tmp_path / "flat", {"happy": 40, "sad": 2})
    ds = load_dataset(tmp_path / "flat")
    with pytest.raises(DataError, match=r"--val-fraction 0.1 leaves class sad \(2 images\) without validation images"):
        hold_out(ds, 0.1)
    train, val = hold_out(ds, 0.25)                                        # 11 held out: sad gets one
    assert val.counts()["val"]["sad"] == 1 and train.counts()["train"]["sad"] == 1
    _flat_folder(tmp_path / "one", {"happy": 5, "fear": 1})
    with pytest.raises(DataError, match="class fear has 1 image; a validation split needs at least 2"):
        hold_out(load_dataset(tmp_path / "one"), 0.5)
    with pytest.raises(DataError, match="between 0 and 1"):
        hold_out(ds, 1.0)


def test_numbered_folders_with_a_class_map(tmp_path):
    faces = _flat_folder(tmp_path / "numbered", {"1": 2, "4": 3, "7": 1})
    ds = load_dataset(tmp_path / "numbered", class_map="1=surprise,4=happiness,7=neutral")
    assert ds.class_names == ("happy", "surprise", "neutral")             # canonical order
    assert ds.counts()["all"] == {"happy": 3, "surprise": 2, "neutral": 1}
    first_happy = int(np.flatnonzero(ds.labels == 0)[0])
    np.testing.assert_array_equal(ds.images[first_happy], faces["4"][0])   # PNG: the pixels exactly
    # the same map from a YAML file, and the preset
    (tmp_path / "map.yaml").write_text("1: surprise\n4: happy\n7: neutral\n")
    assert load_dataset(tmp_path / "numbered", class_map=str(tmp_path / "map.yaml")).counts() == ds.counts()
    assert load_dataset(tmp_path / "numbered", class_map="rafdb").counts() == ds.counts()
    with pytest.raises(DataError, match="number folders need --class-map"):
        load_dataset(tmp_path / "numbered")


@pytest.mark.parametrize("spec, message", [
    ("1=surprise,2=supprise", r"--class-map 1=surprise,2=supprise: label 2: unknown class name 'supprise'"),
    ("1:surprise", r"expected LABEL=CLASS pairs separated by commas, got '1:surprise'"),
])
def test_class_map_errors_name_the_entry(spec, message):
    with pytest.raises(DataError, match=message):
        parse_class_map(spec)


def test_class_map_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("1: surprise\n2: boredom\n")
    with pytest.raises(DataError, match=f"{bad}: label 2: unknown class name 'boredom'"):
        parse_class_map(str(bad))
    with pytest.raises(EmolensError, match="cannot read class map"):
        parse_class_map(str(tmp_path / "missing.yaml"))


def test_a_class_folder_without_images_is_an_error(tmp_path):
    _flat_folder(tmp_path / "f", {"happy": 2})
    (tmp_path / "f" / "sad").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'f' / 'sad'}: class folder holds no images"):
        load_dataset(tmp_path / "f")


def _rafdb(root: Path, rows: list[tuple[str, int]], aligned: bool = True) -> dict[str, np.ndarray]:
    """RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/NAME_aligned.jpg (or original/NAME)."""
    faces = {}
    images, _ = synthetic_faces(len(rows), seed=5)
    for (name, label), face in zip(rows, images):
        stem = name.rsplit(".", 1)[0]
        target = root / "Image" / ("aligned" if aligned else "original") / (f"{stem}_aligned.png" if aligned else name)
        big = np.asarray(Image.fromarray(face).resize((100, 100), Image.NEAREST))
        _save(target, big)
        faces[name] = face
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {lab}\n" for n, lab in rows))
    return faces


@pytest.mark.parametrize("aligned", [True, False])
def test_rafdb_basic_layout(tmp_path, aligned):
    name = "png"  # lossless: the 100x100 faces shrink back to the 48x48 originals' rows
    rows = [(f"train_{i:05d}.{name}", 1 + i % 7) for i in range(1, 15)] + [(f"test_{i:04d}.{name}", 1 + i % 7)
                                                                           for i in range(1, 8)]
    _rafdb(tmp_path / "raf", rows, aligned)
    ds = load_dataset(tmp_path / "raf")
    assert sorted(ds.split_names) == ["test", "train"]
    assert len(ds.split("train")) == 14 and len(ds.split("test")) == 7
    # label 1 = surprise, 4 = happiness, 7 = neutral (RAF-DB's numbering is the default class map)
    by_path = dict(zip(ds.paths, (ds.class_names[i] for i in ds.labels)))
    for file, label in rows:
        stem = file.rsplit(".", 1)[0]
        rel = f"Image/aligned/{stem}_aligned.png" if aligned else f"Image/original/{file}"
        assert by_path[rel] == RAF_ORDER[label - 1]
    assert dict(PRESET_CLASS_MAPS["rafdb"]) == {str(i + 1): c for i, c in enumerate(RAF_ORDER)}


def test_rafdb_errors_name_the_label_file_line(tmp_path):
    root = tmp_path / "raf"
    _rafdb(root, [("train_00001.png", 4), ("train_00002.png", 5)])
    labels = root / "EmoLabel" / "list_patition_label.txt"
    labels.write_text("train_00001.png 4\ntrain_00003.png 5\n")
    with pytest.raises(DataError, match=rf"{labels}: line 2: no image .*train_00003_aligned.png for train_00003.png"):
        load_dataset(root)
    labels.write_text("train_00001.png 4\ntrain_00002.png 9\n")
    with pytest.raises(DataError, match=rf"{labels}: line 2: label '9' is not in the class map \(rafdb"):
        load_dataset(root)
    labels.write_text("train_00001.png\n")
    with pytest.raises(DataError, match=rf"{labels}: line 1: expected 'IMAGE LABEL'"):
        load_dataset(root)


def test_path_label_csv_with_and_without_header(tmp_path):
    faces = _flat_folder(tmp_path / "imgs", {"a": 4})["a"]
    rows = [("imgs/a/000.png", "happy", "train"), ("imgs/a/001.png", "sad", "train"),
            ("imgs/a/002.png", "happy", "val"), ("imgs/a/003.png", "sad", "val")]
    with_header = tmp_path / "labels.csv"
    with_header.write_text("path,label,split\n" + "".join(",".join(r) + "\n" for r in rows))
    ds = load_dataset(with_header)
    assert ds.class_names == ("happy", "sad") and ds.split_names == ["train", "val"]
    np.testing.assert_array_equal(ds.images[1], faces[1])
    assert ds.counts() == {"train": {"happy": 1, "sad": 1}, "val": {"happy": 1, "sad": 1}}
    # AffectNet-style: numbered labels, no header, no split (training holds out a validation part)
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(f"{p},{3 if lab == 'sad' else 1}\n" for p, lab, _ in rows))
    ds2 = load_dataset(bare, class_map="affectnet")
    assert ds2.split_names == ["all"] and ds2.counts()["all"] == {"happy": 2, "surprise": 2}


@pytest.mark.parametrize("line, message", [
    ("imgs/a/000.png", r"line 2: expected path,label\[,split\], got 'imgs/a/000.png' \(a field is missing\)"),
    ("imgs/a/000.png,", r"line 2: expected path,label\[,split\]"),
    ("imgs/a/000.png,bored", r"line 2: unknown label 'bored' \(labels must be class names, or numbers with --class-map\)"),
    ("imgs/a/999.png,happy", r"line 2: no image .*imgs/a/999.png"),
])
def test_path_label_csv_errors_name_the_line(tmp_path, line, message):
    _flat_folder(tmp_path / "imgs", {"a": 1})
    path = tmp_path / "labels.csv"
    path.write_text(f"path,label\n{line}\n")
    with pytest.raises(DataError, match=f"{path}: {message}"):
        load_dataset(path)


def test_unknown_numbered_label_in_a_csv_names_the_map(tmp_path):
    _flat_folder(tmp_path / "imgs", {"a": 1})
    path = tmp_path / "labels.csv"
    path.write_text("imgs/a/000.png,9\n")
    with pytest.raises(DataError, match=rf"{path}: line 1: unknown label '9' \(class map affectnet: 0=neutral"):
        load_dataset(path, class_map="affectnet")


def test_missing_split_message_reads_well(tmp_path):
    _flat_folder(tmp_path / "f", {"happy": 2, "sad": 2})
    ds = load_dataset(tmp_path / "f")
    with pytest.raises(DataError, match=r"no train split \(looked for Training, train, training\); splits present: all"):
        ds.split(None, "train")
