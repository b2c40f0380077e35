"""`emolens data stats` on synthetic files, and on the real FER-2013 copy when it is beside the repo."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import SHARED_FER, cli_command, synthetic_faces, write_fer_csv

from emolens.cli import main


def test_stats_table_and_json(tmp_path, capsys):
    images, labels = synthetic_faces(14)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 7 + ["PublicTest"] * 7)
    out_json = tmp_path / "stats.json"
    assert main(["data", "stats", str(csv), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "Training" in text and "PublicTest" in text and "angry" in text
    data = json.loads(out_json.read_text())
    assert data["splits"]["Training"]["total"] == 7
    assert data["splits"]["PublicTest"]["per_class"] == {c: 1 for c in data["classes"]}


def test_stats_bad_input_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    proc = subprocess.run(cli_command("data", "stats", str(bad)),
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"emolens: error: {bad}: row 1 (line 2), field pixels: "
                                   "expected 2304 values, found 3")


needs_shared = pytest.mark.skipif(not (SHARED_FER / "fer2013.csv.gz").exists(), reason="../shared FER-2013 not present")


@needs_shared
def test_real_fer2013_counts(capsys, tmp_path):
    out_json = tmp_path / "s.json"
    assert main(["data", "stats", str(SHARED_FER), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "28,709" in text and "3,589" in text
    data = json.loads(out_json.read_text())
    per = {s: list(v["per_class"].values()) for s, v in data["splits"].items()}
    assert per["Training"] == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert per["PublicTest"] == [467, 56, 496, 895, 653, 415, 607]


@needs_shared
def test_real_ferplus_drops(tmp_path):
    out_json = tmp_path / "s.json"
    assert main(["data", "stats", str(SHARED_FER), "--ferplus", str(SHARED_FER / "fer2013new.csv"),
                 "--json", str(out_json)]) == 0
    data = json.loads(out_json.read_text())
    assert len(data["classes"]) == 8 and data["classes"][-1] == "contempt"
    dropped = sum(data["dropped"].values())
    assert data["total"] + dropped == 28709 + 3589
    assert data["dropped"]["not a face (NF)"] > 0


def test_stats_reads_a_bom_crlf_csv(tmp_path, capsys):
    images, labels = synthetic_faces(7)
    plain = write_fer_csv(tmp_path / "plain.csv", images, labels, ["Training"] * 7)
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    assert main(["data", "stats", str(excel)]) == 0
    assert "Training" in capsys.readouterr().out


def test_stats_votes_row_without_votes_is_one_line(tmp_path, capsys):
    images, labels = synthetic_faces(2)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 2)
    votes = tmp_path / "fer2013new.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                     "Training,a,0,10,0,0,0,0,0,0,0,0\nTraining,b,0,0,0,0,0,0,0,0,0,0\n")
    assert main(["data", "stats", str(csv), "--ferplus", str(votes)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emolens: error: {votes}: row 2 (line 3): no votes (all 10 vote counts are 0), so the face has no label"


def test_predict_names_symlink_loops_and_dangling_links(tmp_path, capsys):
    import shutil

    from emolens.assets import ASTRONAUT

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ASTRONAUT, folder / "good.jpg")
    (folder / "loop1.jpg").symlink_to("loop2.jpg")
    (folder / "loop2.jpg").symlink_to("loop1.jpg")
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")
    out = tmp_path / "faces.json"
    assert main(["predict", str(folder), "--quiet", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{folder / 'loop1.jpg'}: symbolic link loop" in err
    assert f"{folder / 'gone.png'}: broken symbolic link" in err
    assert "1 image(s), 1 face(s), 3 bad file(s) skipped" in err
    assert "good.jpg" in out.read_text()


@pytest.mark.parametrize("content", [
    pytest.param(lambda: __import__("emolens.assets", fromlist=["ASTRONAUT"]).ASTRONAUT.read_bytes(), id="jpeg"),
    pytest.param(lambda: __import__("gzip").compress(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8), id="gzip-binary"),
    pytest.param(lambda: b"path,label\n" + b"\x00" * 64, id="nul-bytes"),
    pytest.param(lambda: "emotion,pixels,Usage\n0,1 2,Training\n".encode("utf-16"), id="utf-16"),
])
def test_a_binary_file_named_csv_is_one_line_naming_it(tmp_path, content):
    """A photo (or any binary) saved as .csv: `data stats` and `train --data` say so in one line, no
    UnicodeDecodeError traceback; the same for an --exclude file."""
    bad = tmp_path / "faces.csv"
    bad.write_bytes(content())
    expected = f"emolens: error: {bad}: not a text file (its bytes are not UTF-8 text: a binary file named .csv?)"
    for argv in (["data", "stats", str(bad)],
                 ["train", "--data", str(bad), "--epochs", "1", "--out", str(tmp_path / "runs"), "--no-progress"]):
        proc = subprocess.run(cli_command(*argv), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [expected], proc.stderr


def test_a_binary_exclusion_file_is_one_line_naming_it(tmp_path):
    from emolens.data.exclude import read_exclusions
    from emolens.errors import DataError

    bad = tmp_path / "flagged.csv"
    bad.write_bytes(b"row_id,reason\n1,no_face\n\xff\xfe\x00garbage\n")
    with pytest.raises(DataError, match=r"flagged\.csv: not a text file"):
        read_exclusions(bad)
