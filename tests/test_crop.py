"""`emolens crop SRC DST`: photos in class folders -> aligned 48x48 face crops in the same layout,
the same crops `emolens predict` classifies (real detector, real bundled model)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from emolens.assets import astronaut
from emolens.cli import main
from emolens.data import load_dataset


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir()
    Image.fromarray(astronaut()).save(root / "happy" / "astronaut.jpg", quality=95)
    Image.new("RGB", (80, 80), (90, 90, 90)).save(root / "sad" / "wall.jpg")
    return root


def test_crop_writes_the_faces_predict_sees(photos, tmp_path, capsys):
    from emolens.runtime import load_classifier
    from emolens.vision.detectors import create_detector
    from emolens.vision.images import read_image
    from emolens.vision.pipeline import Pipeline

    dst = tmp_path / "crops"
    assert main(["crop", str(photos), str(dst), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"1 face crops written to {dst} from 2 images; 1 without a face (listed in {dst / 'no_face.txt'})" in out
    assert (dst / "no_face.txt").read_text() == "sad/wall.jpg\n"
    crop = np.asarray(Image.open(dst / "happy" / "astronaut.png"))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # the crop is what the recognition pipeline feeds the bundled model for this photo
    clf = load_classifier("ferplus")
    frame = Pipeline(create_detector(), clf, tta="none").run([read_image(photos / "happy" / "astronaut.jpg")])[0]
    assert len(frame.faces) == 1
    expected = np.array(list(frame.faces[0].probabilities.values()))
    np.testing.assert_allclose(clf.predict_proba(crop[None], tta="none")[0], expected, atol=1e-5)
    # and it trains as it is: the class layout is kept
    ds = load_dataset(dst)
    assert ds.class_names == ("happy",) and len(ds) == 1


def test_crop_refuses_a_destination_inside_the_source(photos, capsys):
    assert main(["crop", str(photos), str(photos / "crops"), "--no-progress"]) == 2
    assert "the crops must go outside" in capsys.readouterr().err
