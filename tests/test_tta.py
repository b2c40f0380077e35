"""Test-time augmentation: which views are averaged (none, flip, ten_crop), on models, ensembles,
`emolens evaluate` and the cached teacher labels of distillation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_OPTIONS, make_tiny_model, synthetic_faces, write_fer_csv

from emolens.cli import main
from emolens.errors import ModelError
from emolens.models.registry import create_model
from emolens.models.weights import ModelSpec, Preprocess, load_model, save_model, tta_mode
from emolens.runtime import load_classifier

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def make_crop_model(path, seed=0):
    """A tiny model that sees 44x44 crops of the 48x48 face, like the bundled ones."""
    torch.manual_seed(seed)
    model = create_model("vgg_fer", num_classes=7, **TINY_OPTIONS).eval()
    spec = ModelSpec(name=path.stem, arch="vgg_fer", classes=list(CLASSES), options=dict(TINY_OPTIONS),
                     preprocess=Preprocess(input_size=48, crop=44))
    return save_model(model, spec, path)


@pytest.fixture(scope="module")
def crop_model(tmp_path_factory):
    return make_crop_model(tmp_path_factory.mktemp("crop") / "crop7.safetensors")


def test_views_are_the_centre_and_corner_crops_and_their_mirror_images():
    pre = Preprocess(input_size=48, crop=44, mean=0.0, std=1.0)
    faces = np.arange(48 * 48, dtype=np.int64).reshape(1, 48, 48).astype(np.uint8)
    assert len(pre.views(faces, "none")) == 1 and len(pre.views(faces, True)) == 2
    views = pre.views(faces, "ten-crop")
    assert len(views) == 10 and all(v.shape == (1, 1, 44, 44) for v in views)
    as_pixels = [np.rint(v[0, 0] * 255).astype(np.uint8) for v in views]
    corners = [(2, 2), (0, 0), (0, 4), (4, 0), (4, 4)]
    for i, (top, left) in enumerate(corners):
        crop = faces[0, top:top + 44, left:left + 44]
        np.testing.assert_array_equal(as_pixels[2 * i], crop)
        np.testing.assert_array_equal(as_pixels[2 * i + 1], crop[:, ::-1])
    with pytest.raises(ModelError, match="ten-crop TTA needs a model that sees crops"):
        Preprocess(input_size=48).views(faces, "ten_crop")
    with pytest.raises(ModelError, match="unknown test-time augmentation 'rotate'; choose one of none, flip"):
        tta_mode("rotate")
    assert [tta_mode(v) for v in (None, False, True, "FLIP", "ten-crop")] == ["none", "none", "flip", "flip", "ten_crop"]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_classifier_averages_the_softmax_of_every_view(crop_model, backend):
    faces = synthetic_faces(300, seed=3)[0]  # more than one call's worth of faces
    model, spec = load_model(crop_model)
    with torch.no_grad():
        per_view = [model(torch.from_numpy(x)).softmax(1).numpy() for x in spec.preprocess.views(faces, "ten_crop")]
    clf = load_classifier(crop_model, backend=backend)
    ten = clf.predict_proba(faces, tta="ten_crop")
    np.testing.assert_allclose(ten, np.mean(per_view, axis=0), atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(faces, tta="flip"), np.mean(per_view[:2], axis=0), atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(faces, tta=False), per_view[0], atol=1e-5)
    assert not np.allclose(ten, per_view[0], atol=1e-3)  # the views differ, so the mean is not one pass


def test_ensemble_of_members_sharing_a_crop_takes_ten_crops(crop_model, tmp_path):
    other = make_crop_model(tmp_path / "other.safetensors", seed=1)
    spec = tmp_path / "pair.ensemble.yaml"
    spec.write_text(yaml.safe_dump({"name": "pair", "members": [{"model": str(crop_model), "weight": 1},
                                                                 {"model": str(other), "weight": 3}]}))
    faces = synthetic_faces(12, seed=4)[0]
    vote = load_classifier(str(spec))
    assert vote.spec.preprocess.crop == 44
    expected = (load_classifier(crop_model).predict_proba(faces, tta="ten_crop")
                + 3 * load_classifier(other).predict_proba(faces, tta="ten_crop")) / 4
    np.testing.assert_allclose(vote.predict_proba(faces, tta="ten_crop"), expected, atol=1e-5)
    # members with different crops: the ensemble takes the whole face, so ten crops are refused clearly
    mixed = tmp_path / "mixed.ensemble.yaml"
    mixed.write_text(yaml.safe_dump({"name": "mixed", "members": [
        {"model": str(crop_model), "weight": 1},
        {"model": str(make_tiny_model(tmp_path / "whole.safetensors")), "weight": 1}]}))
    with pytest.raises(ModelError, match="ten-crop TTA needs a model that sees crops"):
        load_classifier(str(mixed)).predict_proba(faces, tta="ten_crop")


def test_evaluate_takes_a_tta_mode(crop_model, tmp_path, capsys):
    images, labels = synthetic_faces(40, seed=6)
    data = write_fer_csv(tmp_path / "fer.csv", images, labels, ["PublicTest"] * 40)
    clf = load_classifier(crop_model)
    for flags, mode in ((["--tta", "ten_crop"], "ten_crop"), (["--tta"], "flip"), (["--no-tta"], "none")):
        out = tmp_path / f"{mode}.json"
        assert main(["evaluate", "--model", str(crop_model), "--data", str(data), "--split", "PublicTest",
                     "--json", str(out), *flags]) == 0
        result = json.loads(out.read_text())
        assert result["tta"] == mode
        expected = (clf.predict_proba(images, tta=mode).argmax(1) == labels).mean()
        assert result["accuracy"] == pytest.approx(expected)
    assert main(["evaluate", "--model", str(crop_model), "--data", str(data), "--tta", "rotate"]) == 2
    assert "unknown test-time augmentation 'rotate'" in capsys.readouterr().err


def test_teacher_labels_use_the_chosen_views_and_are_cached(crop_model, tmp_path, capsys):
    from emolens.data import load_dataset
    from emolens.data.cache import cache_dir
    from emolens.engine.distill import with_teacher_labels

    images, labels = synthetic_faces(30, seed=7)
    ds = load_dataset([str(write_fer_csv(tmp_path / "fer.csv", images, labels, ["Training"] * 30))])
    before = set(cache_dir().glob("teacher-*.npz"))
    ten = with_teacher_labels(ds, str(crop_model), "ten_crop")
    np.testing.assert_allclose(ten.soft_labels, load_classifier(crop_model).predict_proba(images, tta="ten_crop"),
                               atol=1e-5)
    assert "(ten_crop): 30 training faces labelled" in capsys.readouterr().out
    assert len(set(cache_dir().glob("teacher-*.npz")) - before) == 1
    again = with_teacher_labels(ds, str(crop_model), "ten_crop")  # read from the cache
    np.testing.assert_array_equal(again.soft_labels, ten.soft_labels)
    assert len(set(cache_dir().glob("teacher-*.npz")) - before) == 1
    flip = with_teacher_labels(ds, str(crop_model), "flip")  # other views: another entry
    assert len(set(cache_dir().glob("teacher-*.npz")) - before) == 2
    assert not np.allclose(flip.soft_labels, ten.soft_labels, atol=1e-4)


def test_train_refuses_an_unknown_teacher_tta(crop_model, tmp_path, capsys):
    images, labels = synthetic_faces(30, seed=8)
    data = write_fer_csv(tmp_path / "fer.csv", images, labels, ["Training"] * 20 + ["PublicTest"] * 10)
    assert main(["train", "--data", str(data), "--teacher", str(crop_model), "--soft-label-weight", "0.5",
                 "--set", "teacher_tta=rotate", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "unknown teacher_tta 'rotate'; choose one of none, flip, ten_crop" in capsys.readouterr().err
