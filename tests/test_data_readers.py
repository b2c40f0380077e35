"""FER-2013 csv, FER+ votes, image folders, mixes and class subsets, on synthetic files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_faces, write_fer_csv

from emolens.classes import canonical_name, resolve_class_set
from emolens.data import load_dataset
from emolens.data.fer2013 import read_fer2013
from emolens.data.ferplus import read_ferplus
from emolens.errors import DataError

VOTE_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


@pytest.fixture
def fer_csv(tmp_path):
    images, labels = synthetic_faces(21)
    usages = ["Training"] * 14 + ["PublicTest"] * 4 + ["PrivateTest"] * 3
    return write_fer_csv(tmp_path / "fer2013.csv", images, labels, usages), images, labels


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_fer2013_plain_and_gzip(tmp_path, suffix):
    images, labels = synthetic_faces(10)
    path = write_fer_csv(tmp_path / f"fer2013{suffix}", images, labels, ["Training"] * 6 + ["PublicTest"] * 4)
    ds = read_fer2013(path)
    assert ds.images.shape == (10, 48, 48) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.split_names == ["Training", "PublicTest"]
    assert ds.class_names[3] == "happy" and len(ds.class_names) == 7


def test_fer2013_three_usages_and_split_roles(fer_csv):
    path, _, labels = fer_csv
    ds = read_fer2013(path)
    assert ds.counts()["PrivateTest"] == {c: int((labels[18:] == i).sum()) for i, c in enumerate(ds.class_names)}
    assert len(ds.split(None, "train")) == 14
    assert len(ds.split(None, "val")) == 4
    assert len(ds.split(None, "test")) == 3            # PrivateTest preferred for testing
    assert len(ds.split("publictest")) == 4            # case-insensitive
    with pytest.raises(DataError, match="no 'Validation'; splits present: Training, PublicTest, PrivateTest"):
        ds.split("Validation")


def test_fer2013_cache_is_used_and_outside_repo(fer_csv, monkeypatch, tmp_path):
    path, images, _ = fer_csv
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(cache))
    read_fer2013(path)
    files = list(cache.glob("fer2013-*.npz"))
    assert len(files) == 1
    # a second read comes from the cache: prove it by breaking the parser
    monkeypatch.setattr("emolens.data.fer2013._parse", lambda p: pytest.fail("parsed again"))
    np.testing.assert_array_equal(read_fer2013(path).images, images)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("emotion,pixels\n", r"missing column\(s\) Usage"),
    ("emotion,pixels,Usage\n", "no data rows"),
    ("emotion,pixels,Usage\n3," + " ".join(["1"] * 2303) + ",Training\n", r"row 1 \(line 2\), field pixels: expected 2304 values, found 2303"),
    ("emotion,pixels,Usage\n3," + " ".join(["1"] * 2303) + " x1,Training\n", r"row 1 \(line 2\), field pixels: 'x1' is not a whole number"),
    ("emotion,pixels,Usage\n7," + " ".join(["1"] * 2304) + ",Training\n", r"row 1 \(line 2\), field emotion: '7' is not a label in 0..6"),
    ("emotion,pixels,Usage\n3," + " ".join(["300"] * 2304) + ",Training\n", "field pixels: values must lie in 0..255"),
    ("emotion,pixels,Usage\n3," + " ".join(["1"] * 2304) + ",Train\n", "field Usage: 'Train' is not one of"),
])
def test_fer2013_bad_input_names_row_and_field(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_fer2013(path, use_cache=False)


def _votes_file(path, rows):
    path.write_text(VOTE_HEADER + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_ferplus_majority_soft_labels_and_drops(tmp_path):
    images, labels = synthetic_faces(5)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 3 + ["PublicTest"] * 2)
    votes = _votes_file(tmp_path / "fer2013new.csv", [
        ["Training", "a.png", 6, 4, 0, 0, 0, 0, 0, 0, 0, 0],   # neutral 0.6 / happy 0.4
        ["Training", "b.png", 0, 0, 0, 0, 0, 0, 0, 2, 0, 8],   # NF -> dropped
        ["Training", "c.png", 1, 0, 0, 0, 0, 0, 0, 3, 6, 0],   # unknown -> dropped
        ["PublicTest", "d.png", 0, 0, 7, 0, 0, 0, 0, 0, 3, 0],  # surprise
        ["PublicTest", "", 0, 0, 0, 0, 0, 0, 0, 9, 1, 0],       # contempt
    ])
    ds = read_ferplus(csv, votes)
    assert ds.class_names == ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
    assert list(ds.labels) == [0, 2, 7]
    assert ds.dropped == {"not a face (NF)": 1, "unknown": 1}
    np.testing.assert_allclose(ds.soft_labels[0, :2], [0.6, 0.4])
    np.testing.assert_allclose(ds.soft_labels.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.images[1], images[3])   # aligned by position
    assert ds.counts()["PublicTest"]["contempt"] == 1


def test_ferplus_row_count_mismatch(tmp_path):
    images, labels = synthetic_faces(3)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 3)
    votes = _votes_file(tmp_path / "v.csv", [["Training", "a", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 2)
    with pytest.raises(DataError, match="has 2 vote rows but .* has 3 image rows"):
        read_ferplus(csv, votes)


def test_ferplus_bad_vote_names_field(tmp_path):
    images, labels = synthetic_faces(1)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"])
    votes = _votes_file(tmp_path / "v.csv", [["Training", "a", 10, 0, "x", 0, 0, 0, 0, 0, 0, 0]])
    with pytest.raises(DataError, match=r"row 1 \(line 2\), field surprise: 'x' is not a number"):
        read_ferplus(csv, votes)


def _write_png(path, value=128, size=(60, 50), mode="L"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value,) * len(mode)).save(path)


def test_image_folder_split_layout_with_aliases(tmp_path):
    root = tmp_path / "raf"
    for split in ("train", "test"):
        for cls, n in (("Happiness", 2), ("anger", 1), ("3_surprise", 1)):
            for i in range(n):
                _write_png(root / split / cls / f"{i}.png", value=40 * (i + 1))
    _write_png(root / "train" / "anger" / "rgba.png", mode="RGBA")
    ds = load_dataset(root)
    assert ds.class_names == ("angry", "happy", "surprise")
    assert ds.split_names == ["test", "train"]
    assert ds.counts()["train"] == {"angry": 2, "happy": 2, "surprise": 1}
    assert ds.images.shape[1:] == (48, 48)


def test_image_folder_flat_layout_and_bad_files(tmp_path):
    root = tmp_path / "flat"
    _write_png(root / "sad" / "a.png")
    _write_png(root / "neutral" / "b.jpg")
    (root / "sad" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "neutral" / "empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        ds = load_dataset(root)
    assert len(ds) == 2 and ds.dropped == {"unreadable image": 2}
    assert ds.split_names == ["all"]
    with pytest.raises(DataError, match=r"(broken.png|empty.jpg): unreadable image"):
        load_dataset(root, strict=True)


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(tmp_path / "nothing")
    _write_png(tmp_path / "odd" / "train" / "bored" / "a.png")
    with pytest.raises(DataError, match="bored are not expression classes"):
        load_dataset(tmp_path / "odd")


def test_mix_and_class_subset(tmp_path, fer_csv):
    path, _, labels = fer_csv
    root = tmp_path / "folder"
    _write_png(root / "train" / "happy" / "a.png")
    _write_png(root / "train" / "contempt" / "b.png")
    with pytest.raises(DataError, match="share fewer than two classes"):
        load_dataset([path, root])   # only 'happy' in common
    mixed = load_dataset([path, root], classes="angry,happy")
    assert mixed.class_names == ("angry", "happy")
    n_fer = int(((labels == 0) | (labels == 3)).sum())
    assert len(mixed) == n_fer + 1
    assert set(mixed.split_names) == {"Training", "PublicTest", "train"}  # no PrivateTest row is angry or happy
    assert any("class not in set" in k for k in mixed.dropped)

    five = load_dataset(path, classes="basic5")
    assert five.class_names == ("angry", "happy", "sad", "surprise", "neutral")
    assert len(five) == int(np.isin(labels, [0, 3, 4, 5, 6]).sum())
    assert set(five.labels.tolist()) <= set(range(5))


def test_class_names():
    assert canonical_name("Anger") == "angry" and canonical_name("happiness") == "happy"
    assert resolve_class_set("basic5") == ("angry", "happy", "sad", "surprise", "neutral")
    with pytest.raises(DataError, match="unknown class name 'bored'"):
        resolve_class_set("happy,bored")


# ---------------------------------------------------------------- the bad-input corpus

@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_fer2013_with_bom_and_crlf_reads(tmp_path, suffix):
    import gzip

    images, labels = synthetic_faces(4)
    plain = write_fer_csv(tmp_path / "plain.csv", images, labels, ["Training"] * 2 + ["PublicTest"] * 2)
    data = b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n")      # as a spreadsheet saves it
    path = tmp_path / f"excel{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    ds = read_fer2013(path, use_cache=False)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.split_names == ["Training", "PublicTest"]


def test_ferplus_votes_with_bom_and_crlf_read(tmp_path):
    images, labels = synthetic_faces(2)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 2)
    votes = tmp_path / "v.csv"
    votes.write_bytes(b"\xef\xbb\xbf" + (VOTE_HEADER + "\r\nTraining,a,0,9,0,0,0,0,0,1,0,0\r\n"
                                         "Training,b,0,0,8,0,0,0,0,0,2,0\r\n").encode())
    assert list(read_ferplus(csv, votes).labels) == [1, 2]


def test_ferplus_row_without_votes_is_an_error(tmp_path):
    images, labels = synthetic_faces(3)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 3)
    votes = _votes_file(tmp_path / "v.csv", [["Training", "a", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                                             ["Training", "b", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                                             ["Training", "c", 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]])
    with pytest.raises(DataError) as info:
        read_ferplus(csv, votes)
    message = str(info.value)
    assert message == f"{votes}: row 2 (line 3): no votes (all 10 vote counts are 0), so the face has no label"
    assert "\n" not in message


def test_image_folder_names_symlink_loops_and_dangling_links(tmp_path):
    root = tmp_path / "links"
    _write_png(root / "happy" / "a.png")
    _write_png(root / "sad" / "b.png")
    (root / "happy" / "loop1.png").symlink_to("loop2.png")
    (root / "happy" / "loop2.png").symlink_to("loop1.png")
    (root / "sad" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    (root / "sad" / "up").symlink_to(root, target_is_directory=True)     # a folder loop: not followed
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset(root)
    message = str(caught[0].message)
    assert "skipped 3 unreadable image(s)" in message
    assert f"{root / 'happy' / 'loop1.png'}: symbolic link loop" in message
    assert f"{root / 'sad' / 'gone.jpg'}: broken symbolic link to {tmp_path / 'deleted.jpg'}" in message
    assert len(ds) == 2 and ds.counts()["all"] == {"happy": 1, "sad": 1}   # the good files are still read
    with pytest.raises(DataError, match="symbolic link loop"):
        load_dataset(root, strict=True)
