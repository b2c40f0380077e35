"""The `emolens predict / video / webcam / detectors / evaluate --detect` commands, run through cli.main."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import emolens
from emolens.assets import ASTRONAUT, face_frame
from emolens.cli import main

from conftest import synthetic_faces

cv2.setNumThreads(1)


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Good images in nested folders, plus the usual suspects of a real photo folder."""
    root = tmp_path_factory.mktemp("photos")
    save_rgb(root / "one.jpg", face_frame(1))
    save_rgb(root / "trip" / "day1" / "five.png", face_frame(5))
    save_rgb(root / "trip" / "wall.png", face_frame(0))
    (root / "trip" / "zero.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not a picture")
    data = ASTRONAUT.read_bytes()
    (root / "trip" / "half.jpg").write_bytes(data[: len(data) // 2])
    (root / "readme.txt").write_text("ignored: not an image extension")
    return root


def test_predict_folder_reports_bad_files_and_goes_on(folder, tiny_model, tmp_path, capsys):
    out_json, out_csv, saved = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "annotated"
    rc = main(["predict", str(folder), "--model", str(tiny_model), "--json", str(out_json), "--csv", str(out_csv),
               "--save-dir", str(saved)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "one.jpg  face 1" in out and "five.png  face 5" in out and "wall.png  no face found" in out
    assert "3 image(s), 6 face(s), 3 bad file(s) skipped" in err
    for name, reason in (("zero.jpg", "empty file"), ("notes.png", "not an image"), ("half.jpg", "truncated")):
        assert any(name in line and reason in line for line in err.splitlines()), (name, err)
    doc = json.loads(out_json.read_text())
    assert [len(img["faces"]) for img in doc["images"]] == [1, 5, 0]
    assert sorted(Path(e["file"]).name for e in doc["errors"]) == ["half.jpg", "notes.png", "zero.jpg"]
    table = pd.read_csv(out_csv)
    assert len(table) == 7 and {"label", "confidence", "p_happy"} <= set(table.columns)   # 6 faces, 1 image without
    annotated = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*.*"))
    assert annotated == ["one.jpg", "trip/day1/five.png", "trip/wall.png"]      # the tree is mirrored
    img = cv2.imread(str(saved / "one.jpg"))
    assert img.shape == (480, 640, 3) and not np.array_equal(img[..., ::-1], face_frame(1))


def test_predict_json_to_stdout_matches_the_python_api(tiny_model, capsys):
    rc = main(["predict", str(ASTRONAUT), "--model", str(tiny_model), "--json", "-", "--quiet"])
    out, _ = capsys.readouterr()
    assert rc == 0
    face = json.loads(out)["images"][0]["faces"][0]
    expected = emolens.Recognizer(model=str(tiny_model)).predict(ASTRONAUT).faces[0]   # both: the photo size
    assert face["label"] == expected.label
    assert face["probabilities"] == pytest.approx(expected.probabilities, abs=1e-4)


def test_predict_with_only_bad_files_is_one_error_line(tmp_path, tiny_model, capsys):
    (tmp_path / "a.jpg").write_bytes(b"")
    rc = main(["predict", str(tmp_path / "a.jpg"), str(tmp_path / "missing.png"), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines()[-1] == "emolens: error: none of the 2 file(s) could be read as an image"
    assert "missing.png: no such file" in err and "Traceback" not in err


def test_video_command_writes_everything(tmp_path, tiny_model, capsys):
    src = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(10):
        writer.write(face_frame(2, offset=(2 * i, 0))[..., ::-1])
    writer.release()
    out, table = tmp_path / "out" / "annotated.mp4", tmp_path / "out" / "timeline.csv"
    rc = main(["video", str(src), "--model", str(tiny_model), "--out", str(out), "--csv", str(table), "--every", "2",
               "--no-progress"])
    stdout = capsys.readouterr().out
    assert rc == 0
    assert "10 frames read, 5 processed, 10 faces, 2 tracks" in stdout
    assert out.stat().st_size > 0 and len(pd.read_csv(table)) == 10
    assert sorted(p.name for p in table.parent.glob("*.png")) == ["timeline_overview.png", "timeline_track1.png",
                                                                   "timeline_track2.png"]


def test_video_command_on_a_bad_file_is_one_line(tmp_path, tiny_model, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    rc = main(["video", str(bad), "--model", str(tiny_model), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "broken.mp4" in err


def test_webcam_without_camera_or_display_says_so(tiny_model, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = main(["webcam", "--device", "7", "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "no display" in err
    if not Path("/dev/video7").exists():
        assert "no camera 7" in err
        monkeypatch.setenv("DISPLAY", ":97")                    # a display, but still no camera
        assert main(["webcam", "--device", "7", "--model", str(tiny_model)]) == 2
        err = capsys.readouterr().err
        assert "no camera 7" in err and "no display" not in err


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (Debian package xvfb) for a virtual display")
def test_webcam_window_runs_on_a_virtual_display(tmp_path, tiny_model):
    """The live loop for real: a virtual X display, a video file standing in for the camera."""
    clip = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(8):
        writer.write(face_frame(1)[..., ::-1])
    writer.release()
    display = next(n for n in range(90, 140) if not Path(f"/tmp/.X{n}-lock").exists())
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{display}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "DISPLAY": f":{display}", "QT_LOGGING_RULES": "*=false"}
        run = subprocess.run([sys.executable, "-m", "emolens.cli", "webcam", "--device", str(clip), "--model",
                              str(tiny_model), "--max-frames", "5"], env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert run.returncode == 0, run.stderr
    assert "5 frames shown" in run.stdout


def test_detectors_command_lists_them(capsys):
    assert main(["detectors"]) == 0
    out = capsys.readouterr().out
    assert "retinaface *" in out and "haar" in out and "mtcnn" in out


def test_evaluate_detect_counts_images_without_faces(tmp_path, tiny_model, capsys):
    """Uncropped photos in class folders: a no-face image lowers both detection rate and accuracy."""
    root = tmp_path / "photos"
    save_rgb(root / "test" / "Happiness" / "a.jpg", face_frame(1))
    save_rgb(root / "test" / "Happiness" / "b.png", face_frame(1, offset=(30, 0)))
    save_rgb(root / "test" / "sad" / "c.jpg", face_frame(2))
    save_rgb(root / "test" / "neutral" / "wall.jpg", face_frame(0))
    (root / "test" / "sad" / "broken.jpg").write_bytes(b"garbage")
    save_rgb(root / "train" / "happy" / "ignored.jpg", face_frame(1))
    out_json = tmp_path / "metrics.json"
    rc = main(["evaluate", "--model", str(tiny_model), "--data", str(root), "--detect", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0 and "detection rate 0.7500" in captured.out and "broken.jpg" in captured.err
    m = json.loads(out_json.read_text())
    assert m["n_images"] == 4 and m["n_no_face"] == 1 and m["n_unreadable"] == 1
    assert m["detection_rate"] == pytest.approx(0.75)
    # the same numbers from the Python API: largest face per image, "no face" counts as wrong
    rec = emolens.Recognizer(model=str(tiny_model))
    truth = {"a.jpg": "happy", "b.png": "happy", "c.jpg": "sad"}
    correct = 0
    for name, label in truth.items():
        path = next(root.rglob(name))
        faces = rec.predict(path).faces
        correct += max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])).label == label
    assert m["accuracy"] == pytest.approx(correct / 4)
    assert m["n"] == 4 and sum(map(sum, m["confusion_matrix"])) == 3       # the no-face image is in no cell


def test_evaluate_detect_flat_layout_and_a_class_the_model_lacks(tmp_path, tiny_model, capsys):
    from emolens.runtime import load_classifier
    from emolens.evaluation.detect import evaluate_detect

    root = tmp_path / "flat"
    save_rgb(root / "happy" / "a.jpg", face_frame(1))
    clf = load_classifier(str(tiny_model))
    m = evaluate_detect(clf, [root], progress=False)
    assert m.extra["n_images"] == 1 and m.extra["detection_rate"] == 1.0
    save_rgb(root / "contempt" / "b.jpg", face_frame(1))
    m = evaluate_detect(clf, [root], progress=False)          # the 7-class model lacks contempt: left out, counted
    assert m.n == 1 and m.extra["left_out"] == {"contempt": 1} and m.extra["n_images"] == 2


def test_evaluate_numbered_folders_through_a_class_map(tmp_path, tiny_model, capsys):
    """RAF-DB-style numbered folders (4 = happy, 5 = sad): --class-map names them, for crops and with --detect;
    without the map the folders are refused with a line naming the fix."""
    photos, crops = tmp_path / "photos", tmp_path / "crops"
    save_rgb(photos / "4" / "a.jpg", face_frame(1))
    save_rgb(photos / "5" / "b.jpg", face_frame(1, offset=(30, 0)))
    for i, (img, lab) in enumerate(zip(*synthetic_faces(6, n_classes=2, seed=3))):
        save_rgb(crops / ("4" if lab == 0 else "5") / f"{i}.png", np.stack([img] * 3, -1))
    for root, extra in ((photos, ["--detect"]), (crops, [])):
        out = tmp_path / f"{root.name}.json"
        assert main(["evaluate", "--model", str(tiny_model), "--data", str(root), "--class-map", "rafdb",
                     "--json", str(out), *extra]) == 0
        m = json.loads(out.read_text())
        assert m["n"] == (2 if extra else 6) and set(m["per_class"]) >= {"happy", "sad"}
        capsys.readouterr()
        assert main(["evaluate", "--model", str(tiny_model), "--data", str(root), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--class-map" in err[0], err


def test_outputs_never_overwrite_inputs(tmp_path, tiny_model, capsys):
    """One rule for every command that writes beside its inputs: an output that is an input file (under
    any spelling or link), or an output folder inside an input folder, is refused in one line, exit 2."""
    photos = tmp_path / "photos"
    photo = save_rgb(photos / "photo.jpg", face_frame(1))
    original = photo.read_bytes()
    (tmp_path / "link").symlink_to(photos)

    def refused(argv, *texts):
        assert main(argv + ["--model", str(tiny_model), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and all(t in err[0] for t in texts), err
        assert photo.read_bytes() == original

    refused(["predict", str(photo), "--save-dir", str(photos)], "photo.jpg: is the input", "--save-dir")
    refused(["predict", str(photo), "--save-dir", str(tmp_path / "link")], "is the input", "--save-dir")
    refused(["predict", str(photo), "--save-dir", str(photos / "sub" / "..")], "is the input")
    refused(["predict", str(photo), "--json", str(photo)], "is the input", "--json")
    refused(["predict", str(photo), "--csv", str(tmp_path / "link" / "photo.jpg")], "is the input", "--csv")
    refused(["predict", str(photos), "--save-dir", str(photos / "annotated")],
            "--save-dir", "lies inside the input folder", "a second run would read the annotated copies")
    # elsewhere it writes, and a second run draws on the original again (no boxes on boxes)
    out = tmp_path / "annotated"
    for _ in range(2):
        assert main(["predict", str(photos), "--save-dir", str(out), "--model", str(tiny_model), "--no-progress"]) == 0
        first = (out / "photo.jpg").read_bytes() if _ == 0 else first
    assert (out / "photo.jpg").read_bytes() == first and photo.read_bytes() == original
    capsys.readouterr()

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(3):
        writer.write(face_frame(1, offset=(2 * i, 0))[..., ::-1])
    writer.release()
    video = clip.read_bytes()
    for option, target in (("--out", tmp_path / "x" / ".." / "clip.avi"), ("--csv", clip)):
        assert main(["video", str(clip), option, str(target), "--model", str(tiny_model), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is the input" in err[0] and option in err[0], err
        assert clip.read_bytes() == video
    # several inputs: one's output may not be another input either
    other = tmp_path / "vids" / "clip.mp4"
    other.parent.mkdir()
    other.write_bytes(b"not read")
    assert main(["video", str(clip), str(other), "--out", str(other.parent), "--model", str(tiny_model)]) == 2
    assert "is the input" in capsys.readouterr().err and other.read_bytes() == b"not read"


def test_audit_refuses_an_output_folder_inside_the_data(tmp_path, capsys):
    root = tmp_path / "faces"
    save_rgb(root / "happy" / "a.png", face_frame(1)[:48, :48])
    assert main(["data", "audit", str(root), "--out", str(root / "audit"), "--checks", "duplicates",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lies inside the input folder" in err[0] and "contact sheets" in err[0], err
    assert not (root / "audit").exists()


def test_csv_and_pandas_keep_images_without_a_face_and_a_quoted_glob_is_expanded(folder, tiny_model, tmp_path,
                                                                                 capsys):
    """The CSV (like the JSON) has a row for an image with no face: its face columns are empty; a quoted
    pattern ('dir/*.png', as a script or a shell without globbing passes it) names the files it matches."""
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    rc = main(["predict", str(folder / "trip" / "*.png"), str(folder / "**" / "one.jpg"), "--model", str(tiny_model),
               "--csv", str(out_csv), "--json", str(out_json), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out_json.read_text())
    assert [Path(i["source"]).name for i in doc["images"]] == ["wall.png", "one.jpg"]
    table = pd.read_csv(out_csv)
    assert [Path(s).name for s in table["source"]] == ["wall.png", "one.jpg"]
    wall, one = table.iloc[0], table.iloc[1]
    assert pd.isna(wall["face"]) and pd.isna(wall["label"]) and pd.isna(wall["p_happy"]) and pd.isna(wall["x1"])
    assert not pd.isna(one["face"]) and f"p_{one['label']}" in table.columns
    df = emolens.Recognizer(model=str(tiny_model)).predict_batch([folder / "trip" / "wall.png", folder / "one.jpg"]) \
        .to_pandas()
    assert len(df) == 2 and pd.isna(df["label"].iloc[0]) and not pd.isna(df["face"].iloc[1])
    frame = emolens.Recognizer(model=str(tiny_model)).predict(folder / "trip" / "wall.png")
    assert len(frame.to_pandas()) == 1 and frame.to_pandas()["face"].isna().all()
    assert main(["predict", str(folder / "nothing*.jpg"), "--model", str(tiny_model)]) == 2
    assert "nothing*.jpg: no such file" in capsys.readouterr().err


def two_rows_of_faces() -> np.ndarray:
    """Six heads in two uneven rows: left to right alone interleaves the rows, top to bottom alone
    mixes up the first row (its middle face sits highest)."""
    from emolens.assets import astronaut

    canvas = np.full((640, 960, 3), 96, np.uint8)
    tile = cv2.resize(astronaut()[20:300, 110:390], (200, 200), interpolation=cv2.INTER_AREA)
    for x, y in HEADS:
        canvas[y:y + 200, x:x + 200] = tile
    return canvas


#: Where two_rows_of_faces puts its 200-px heads: row 1 (its middle one highest), then row 2.
HEADS = ((20, 30), (340, 5), (660, 60), (160, 360), (480, 330), (740, 380))


def test_faces_are_numbered_from_1_in_reading_order_in_the_table_csv_and_json(tiny_model, tmp_path, capsys):
    photo = save_rgb(tmp_path / "group.png", two_rows_of_faces())
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    assert main(["predict", str(photo), "--model", str(tiny_model), "--csv", str(out_csv), "--json", str(out_json)]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if "  face " in line]
    faces = json.loads(out_json.read_text())["images"][0]["faces"]
    rows = pd.read_csv(out_csv)
    assert len(faces) == 6 and len(table) == 6 and len(rows) == 6
    centres = np.array([[(f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2] for f in faces])
    heads = np.array(HEADS) + 100
    nearest = [int(np.argmin(np.linalg.norm(heads - c, axis=1))) for c in centres]
    assert nearest == [0, 1, 2, 3, 4, 5], centres     # row 1 left to right, then row 2 left to right
    assert [f["face"] for f in faces] == [1, 2, 3, 4, 5, 6] == rows["face"].tolist()
    for number, (line, face) in enumerate(zip(table, faces), start=1):
        box = line.split(f"  face {number}  box ")[1].split()[0]
        assert [float(v) for v in box.split(",")] == pytest.approx(face["box"], abs=1)
    assert rows["x1"].round(1).tolist() == [round(f["box"][0], 1) for f in faces]
