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


def test_no_face_check_passes_clear_faces_tilted_or_on_their_side(face_crops, tmp_path, capsys):
    """Clear faces that the photo detector scores low as they are (on their side, tilted) are not
    flagged; noise and a blank crop still are. Before, each of the sideways ones was a false alarm."""
    import cv2

    from emolens.assets import astronaut
    from emolens.vision.align import align_face
    from emolens.vision.detectors import create_detector

    rgb = astronaut()
    det = max(create_detector().detect(rgb), key=lambda d: d.area)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    wide = align_face(grey, det, 48, 0.5)            # the face and much around it, as FER-2013 crops often are
    medium = align_face(grey, det, 48, 0.3)
    turn = cv2.getRotationMatrix2D((24, 24), 45, 1.0)
    root = tmp_path / "faces"
    faces = {"happy/side_left.png": np.rot90(wide, 1), "happy/side_right.png": np.rot90(wide, 3),
             "happy/side_medium.png": np.rot90(medium, 3),
             "sad/tilted.png": cv2.warpAffine(wide, turn, (48, 48), borderMode=cv2.BORDER_REPLICATE),
             "sad/upright.png": face_crops[0]}
    for name, face in faces.items():
        _save(root / name, np.ascontiguousarray(face))
    rng = np.random.default_rng(3)
    _save(root / "sad/noise.png", rng.integers(0, 256, (48, 48), dtype=np.uint8))
    _save(root / "happy/blank.png", np.full((48, 48), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["data", "audit", str(root), "--checks", "faces", "--out", str(out), "--no-progress"]) == 0
    flagged = {r["path"]: float(r["score"]) for r in _rows(out / "flagged.csv")}
    assert set(flagged) == {"sad/noise.png", "happy/blank.png"}, flagged
    assert all(score < 0.5 for score in flagged.values())
    assert f"  {NO_FACE:<22}      2" in capsys.readouterr().out


CAPTION_CELLS = {"pairs": (2 * 96 + 4, 5), "single": (96, 10)}   # cell width, cells per row (gap 6)


def _ink_in_gaps(png: bytes, cell_w: int, per_row: int, n: int) -> int:
    """Dark caption pixels between two cells of a contact sheet: 0 when every caption stays in its cell."""
    import cv2

    sheet = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    n_rows = -(-n // per_row)
    band = sheet.shape[0] // n_rows
    ink = 0
    for r in range(n_rows):
        captions = sheet[r * band + 96:(r + 1) * band]
        for c in range(per_row):
            x = c * (cell_w + 6)
            ink += int((captions[:, x + cell_w:x + cell_w + 6] < 160).sum())
    return ink


def test_contact_sheet_captions_stay_in_their_cells(face_crops, tmp_path):
    """Long file names (CK+ style), duplicate pairs, crops without a face: no caption runs into its
    neighbour's (before, a pair's 'id split = id split' line and a long id ran over the next cell)."""
    root = tmp_path / "faces"
    rng = np.random.default_rng(4)
    n = 7
    for i in range(n):
        _save(root / "train/surprise" / f"S{i:03d}_001_00000019.png", face_crops[i % len(face_crops)])
        shutil.copy(root / "train/surprise" / f"S{i:03d}_001_00000019.png",
                    root / "train/surprise" / f"S{i:03d}_001_00000020.png")
        _save(root / "train/surprise" / f"S{i:03d}_002_00000021.png", rng.integers(0, 256, (48, 48), dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["data", "audit", str(root), "--checks", "duplicates,faces", "--out", str(out), "--no-progress"]) == 0
    for reason, (cell_w, per_row) in ((EXACT, CAPTION_CELLS["pairs"]), (NO_FACE, CAPTION_CELLS["single"])):
        png = (out / f"sheet_{reason}.png").read_bytes()
        assert _ink_in_gaps(png, cell_w, per_row, n) == 0, reason


def _unseparable_report(n_per_class: int = 20):
    """A labels audit whose features carry no class information: the out-of-fold model is near chance."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(0, 256, (len(labels), 8, 8), dtype=np.uint8)
    ds = FaceDataset(images, labels, np.array(["Training"] * len(labels)), ("angry", "happy", "sad"),
                     source="synthetic", row_ids=np.arange(len(labels)))
    return run_audit(ds, ["labels"], features_of=lambda faces: faces.reshape(len(faces), -1)[:, :6].astype(float))


def test_unreliable_label_findings_are_said_so_and_not_excluded_by_default(tmp_path, capsys):
    from emolens.data.audit import RELIABLE_LABEL_ACCURACY, findings_csv, format_counts
    from emolens.data.exclude import read_exclusions

    report = _unseparable_report()
    accuracy = next(float(n.split()[-4]) for n in report.notes if n.startswith("out-of-fold accuracy"))
    assert accuracy < RELIABLE_LABEL_ACCURACY and report.unreliable == [LABEL_ISSUE]
    printed = format_counts(report)
    assert "note: label findings unreliable: the label model is right on" in printed
    assert "keeps them unless --exclude-reasons names label_issue" in printed
    labelled = [f for f in report.findings if f.reason == LABEL_ISSUE]
    assert labelled
    flagged = tmp_path / "flagged.csv"
    # one no_face row besides, as an audit with the faces check would write it
    rows = findings_csv(report).decode().splitlines()
    assert rows[0].endswith(",default_exclude") and all(r.endswith(",no") for r in rows[1:])
    flagged.write_text("\n".join(rows + ["59,Training,sad,no_face,0.1,,,,,yes"]) + "\n")
    ex = read_exclusions(flagged)
    assert ex.ids == [59] and ex.held_back == {LABEL_ISSUE: len(labelled)}
    assert ex.describe_held_back() == (f"kept {len(labelled)} label_issue row(s) the audit found unreliable; "
                                       "--exclude-reasons naming label_issue excludes them too")
    asked = read_exclusions(flagged, reasons="label_issue,no_face")
    assert len(asked.ids) == len(labelled) + 1 and asked.held_back == {}

    # `emolens train --exclude` says what it kept
    from conftest import synthetic_faces

    from emolens.engine.config import TrainConfig
    from emolens.engine.train import prepare_data

    images, labels = synthetic_faces(80)
    data = write_fer_csv(tmp_path / "fer.csv", images, labels, ["Training"] * 60 + ["PublicTest"] * 20)
    capsys.readouterr()
    parts = prepare_data(TrainConfig(data=[str(data)], exclude=str(flagged)).validate())
    assert 59 not in parts.train.row_ids and all(f.row in parts.train.row_ids for f in labelled)
    assert (f"excluded 1 training rows flagged in {flagged}; kept {len(labelled)} label_issue row(s) the audit "
            "found unreliable") in capsys.readouterr().out


def test_reliable_label_findings_stay_in_the_default_exclusions():
    from emolens.data.audit import findings_csv

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(2), 30)
    images = np.zeros((60, 8, 8), np.uint8)
    images[:, :, :4] = (40 + 150 * labels + rng.integers(0, 20, 60))[:, None, None]
    noisy = labels.copy()
    noisy[7] = 1
    ds = FaceDataset(images, noisy, np.array(["Training"] * 60), ("happy", "sad"), source="synthetic",
                     row_ids=np.arange(60))
    report = run_audit(ds, ["labels"], features_of=lambda f: f[:, :, :4].mean(axis=(1, 2))[:, None])
    assert report.unreliable == [] and not any("unreliable" in n for n in report.notes)
    assert findings_csv(report).decode().splitlines()[1].endswith(",yes")


def test_a_small_set_gets_as_many_folds_as_its_smallest_class_has_rows():
    """A 350-face FER-2013 sample has 4 disgust faces: the labels check runs 4-fold and says so,
    instead of stopping for want of a fifth."""
    rng = np.random.default_rng(6)
    labels = np.array([0] * 30 + [1] * 4 + [2] * 30)
    features = np.eye(3)[labels] * 3 + rng.normal(0, 0.3, (len(labels), 3))
    ds = FaceDataset(np.zeros((len(labels), 4, 4), np.uint8), labels, np.array(["Training"] * len(labels)),
                     ("angry", "disgust", "fear"), source="synthetic", row_ids=np.arange(len(labels)))
    report = run_audit(ds, ["labels"], features_of=lambda faces: features)
    assert report.notes[0] == "label model: 4-fold, as disgust has only 4 rows"
    assert report.unreliable == []
    one_disgust = ds.select(np.arange(len(labels)) < 31)          # 30 angry, 1 disgust: no folds possible
    with pytest.raises(DataError, match="the smallest class has 1 "):
        run_audit(one_disgust, ["labels"], features_of=lambda faces: features[:31])
