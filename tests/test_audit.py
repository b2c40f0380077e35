"""``emolens data audit`` and ``emolens train --exclude`` on small real fixtures: face crops cut from the
bundled astronaut portrait by the real detector and aligner, with planted duplicates and non-faces;
cleanlab's label issues on a separable synthetic problem with planted label flips."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fer_csv

from emolens.cli import main
from emolens.data import load_dataset
from emolens.data.audit import (CROSS, EXACT, LABEL_ISSUE, NEAR, NO_FACE, find_label_issues,
                                out_of_fold_probabilities, run_audit)
from emolens.data.dataset import FaceDataset
from emolens.data.exclude import apply_exclusions
from emolens.data.phash import DEFAULT_MAX_DISTANCE, _popcount, perceptual_hashes
from emolens.errors import DataError


@pytest.fixture(scope="module")
def face_crops() -> np.ndarray:
    """Six distinct 48x48 grey face crops: the astronaut's face found by the default detector, aligned
    with three margins, each also mirrored. Their pHashes differ by more than the near-duplicate limit."""
    import cv2

    from emolens.assets import astronaut
    from emolens.vision.align import align_face
    from emolens.vision.detectors import create_detector

    rgb = astronaut()
    det = max(create_detector().detect(rgb), key=lambda d: d.area)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    crops = [align_face(grey, det, 48, margin) for margin in (0.1, 0.3, 0.5)]
    crops += [c[:, ::-1].copy() for c in crops]
    faces = np.stack(crops)
    h = perceptual_hashes(faces)
    dist = _popcount(h[:, None] ^ h[None, :])
    assert dist[~np.eye(len(h), dtype=bool)].min() > DEFAULT_MAX_DISTANCE   # the fixture is what it claims
    return faces


def _save(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def audit_folder(face_crops, tmp_path_factory) -> Path:
    """train/ and val/ splits of happy and sad faces with planted problems:
    train/happy/a_dup.png = a.png (exact), train/sad/d_near.png ~ d.png (brightness +6 and noise),
    val/happy/x.png = train/happy/b.png (cross-split), train/sad/noise.png and train/happy/blank.png (no face)."""
    root = tmp_path_factory.mktemp("audit") / "faces"
    rng = np.random.default_rng(0)
    names = ["train/happy/a.png", "train/happy/b.png", "train/happy/c.png",
             "train/sad/d.png", "train/sad/e.png", "val/sad/f.png"]
    for name, face in zip(names, face_crops):
        _save(root / name, face)
    shutil.copy(root / "train/happy/a.png", root / "train/happy/a_dup.png")
    near = np.clip(face_crops[3].astype(int) + 6 + rng.integers(-2, 3, face_crops[3].shape), 0, 255).astype(np.uint8)
    _save(root / "train/sad/d_near.png", near)
    (root / "val/happy").mkdir()
    shutil.copy(root / "train/happy/b.png", root / "val/happy/x.png")
    _save(root / "train/sad/noise.png", rng.integers(0, 256, (48, 48), dtype=np.uint8))
    _save(root / "train/happy/blank.png", np.full((48, 48), 128, np.uint8))
    return root


def _rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_audit_cli_finds_duplicates_and_non_faces(audit_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "audit", str(audit_folder), "--checks", "duplicates,faces", "--out", str(out),
                 "--no-progress"]) == 0
    rows = _rows(out / "flagged.csv")
    found = {(r["path"], r["reason"]): r for r in rows}
    assert set(found) == {("train/happy/a_dup.png", EXACT), ("train/sad/d_near.png", NEAR),
                          ("train/happy/b.png", CROSS), ("train/sad/noise.png", NO_FACE),
                          ("train/happy/blank.png", NO_FACE)}
    exact = found["train/happy/a_dup.png", EXACT]
    assert (exact["pair"], exact["score"], exact["split"], exact["label"]) == ("train/happy/a.png", "0.0", "train", "happy")
    near = found["train/sad/d_near.png", NEAR]
    assert near["pair"] == "train/sad/d.png" and float(near["score"]) <= DEFAULT_MAX_DISTANCE
    cross = found["train/happy/b.png", CROSS]          # the training copy is flagged, the validation one kept
    assert (cross["split"], cross["pair"], cross["pair_split"]) == ("train", "val/happy/x.png", "val")
    assert float(found["train/happy/blank.png", NO_FACE]["score"]) < 0.5
    for reason in (EXACT, NEAR, CROSS, NO_FACE):
        assert (out / f"sheet_{reason}.png").stat().st_size > 1000
    assert not (out / f"sheet_{LABEL_ISSUE}.png").exists()
    printed = capsys.readouterr().out
    assert "cross-split duplicate pairs: 1 exact, 0 near" in printed
    assert f"  {NO_FACE:<22}      2" in printed


def test_audit_of_a_fer_csv_names_rows_by_position_with_ferplus_nf(tmp_path, capsys):
    from conftest import synthetic_faces

    images, labels = synthetic_faces(6)
    images[4] = images[1]                                     # a Training face again in PublicTest
    data = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 4 + ["PublicTest"] * 2)
    votes = tmp_path / "fer2013new.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                     + "".join(f"Training,{i},{10 - 8 * (i == 2)},0,0,0,0,0,0,0,0,{8 * (i == 2)}\n" for i in range(6)))
    out = tmp_path / "out"
    assert main(["data", "audit", str(data), "--ferplus", str(votes), "--checks", "duplicates", "--out", str(out),
                 "--no-progress"]) == 0
    rows = [(r["row_id"], r["split"], r["reason"], r["score"], r["pair"], r["pair_split"]) for r in _rows(out / "flagged.csv")]
    assert rows == [("1", "Training", CROSS, "0.0", "4", "PublicTest"), ("2", "Training", "ferplus_nf", "0.8", "", "")]
    assert (out / "sheet_ferplus_nf.png").exists() and not (out / f"sheet_{NO_FACE}.png").exists()
    capsys.readouterr()
    assert main(["data", "audit", str(data), "--ferplus-labels", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "emolens: error: --ferplus-labels needs --ferplus VOTES\n"
    assert main(["data", "audit", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"emolens: error: {tmp_path / 'missing.csv'}: no such file or folder\n"
    assert main(["data", "audit", str(data), "--checks", "dups", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("emolens: error: unknown audit check(s) dups; choose from duplicates")


def test_label_issues_flags_the_flipped_labels():
    """Three separable classes in 2-D; four labels flipped: cleanlab on out-of-fold probabilities flags them."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [0, 6]], float)
    labels = np.repeat(np.arange(3), 60)
    features = centres[labels] + rng.normal(0, 0.5, (len(labels), 2))
    flipped = np.array([3, 70, 125, 145])
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + 1) % 3
    probs = out_of_fold_probabilities(features, noisy, folds=5)
    issues = find_label_issues(noisy, probs, ("a", "b", "c"))
    assert sorted(f.row for f in issues) == flipped.tolist()
    by_row = {f.row: f for f in issues}
    assert by_row[3].label == "b" and by_row[3].suggested == "a" and by_row[3].score < 0.1


def test_run_audit_label_check_maps_rows_through_the_feature_function():
    """The whole labels path of run_audit: features from the images (the mean of each half), a flipped label found."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(2), 30)
    images = np.zeros((60, 8, 8), np.uint8)
    images[:, :, :4] = (40 + 150 * labels + rng.integers(0, 20, 60))[:, None, None]
    images[:, :, 4:] = (190 - 150 * labels + rng.integers(0, 20, 60))[:, None, None]
    noisy = labels.copy()
    noisy[7] = 1
    ds = FaceDataset(images, noisy, np.array(["Training"] * 60), ("happy", "sad"), source="synthetic",
                     row_ids=np.arange(100, 160))
    def half_means(faces):
        return np.stack([faces[:, :, :4].mean(axis=(1, 2)), faces[:, :, 4:].mean(axis=(1, 2))], axis=1)

    report = run_audit(ds, ["labels"], features_of=half_means)
    assert [(f.row, f.label, f.suggested) for f in report.findings] == [(7, "sad", "happy")]
    assert report.counts()[LABEL_ISSUE] == 1
    # Labels from another reading of a subset of the rows (as FER+ keeps a subset): findings name ds's rows.
    subset = ds.select(np.arange(60) != 2)
    report = run_audit(ds, ["labels"], features_of=half_means, label_ds=subset)
    assert [(f.row, ds.row_ids[f.row]) for f in report.findings] == [(7, 107)]


def test_train_exclusions_drop_exactly_the_flagged_training_rows(tmp_path):
    images = np.random.default_rng(2).integers(0, 255, (10, 48, 48), dtype=np.uint8)
    usages = ["Training"] * 7 + ["PublicTest"] * 3
    data = write_fer_csv(tmp_path / "fer.csv", images, np.arange(10) % 7, usages)
    ds = load_dataset(data)
    train, val = ds.split(None, "train"), ds.split(None, "val")
    flagged = tmp_path / "flagged.csv"
    flagged.write_text("row_id,split,label,reason,score\n2,Training,fear,no_face,0.1\n"
                       "5,Training,surprise,label_issue,0.05\n8,PublicTest,disgust,exact_duplicate,0\n")
    kept, n = apply_exclusions(train, ds, flagged)
    assert n == 2 and kept.row_ids.tolist() == [0, 1, 3, 4, 6]
    assert np.array_equal(kept.images, images[[0, 1, 3, 4, 6]])
    kept, n = apply_exclusions(train, ds, flagged, reasons="label_issue")
    assert n == 1 and kept.row_ids.tolist() == [0, 1, 2, 3, 4, 6]
    flagged.write_text("row_id,reason\n3,no_face\n10,no_face\n")
    with pytest.raises(DataError, match=r"flagged.csv: line 3: row_id 10 is not a row of .*fer.csv$"):
        apply_exclusions(train, ds, flagged)


def test_train_exclude_flags_reach_the_training_data(tmp_path, capsys):
    """--exclude / --exclude-reasons become config keys, and prepare_data (what `emolens train` trains on)
    drops exactly the flagged training rows; an unknown id stops `emolens train` with one line."""
    from conftest import synthetic_faces

    from emolens.cli import build_parser
    from emolens.cli.engine import train_overrides
    from emolens.engine.train import prepare_data
    from emolens.tasks import train_config

    def build_train_config(args):
        return train_config(args.config, **train_overrides(args))

    images, labels = synthetic_faces(40)
    data = write_fer_csv(tmp_path / "fer.csv", images, labels, ["Training"] * 30 + ["PublicTest"] * 10)
    flagged = tmp_path / "flagged.csv"
    flagged.write_text("row_id,reason\n0,no_face\n1,label_issue\n35,cross_split_duplicate\n")
    argv = ["train", "--data", str(data), "--exclude", str(flagged), "--out", str(tmp_path / "runs")]
    cfg = build_train_config(build_parser().parse_args(argv))
    assert (cfg.exclude, cfg.exclude_reasons) == (str(flagged), None)
    parts = prepare_data(cfg)
    train, val = parts.train, parts.val
    assert train.row_ids.tolist() == list(range(2, 30)) and val.row_ids.tolist() == list(range(30, 40))
    assert "excluded 2 training rows" in capsys.readouterr().out
    cfg = build_train_config(build_parser().parse_args(argv + ["--exclude-reasons", "label_issue"]))
    assert prepare_data(cfg).train.row_ids.tolist() == [0] + list(range(2, 30))

    flagged.write_text("row_id,reason\n0,no_face\n40,no_face\n")
    assert main(argv + ["--name", "bad", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emolens: error: ") and "flagged.csv: line 3: row_id 40 is not a row of" in err
    assert "\n" not in err
    assert main(argv + ["--exclude-reasons", "typo"]) == 2
    assert "unknown exclusion reason(s) typo" in capsys.readouterr().err
