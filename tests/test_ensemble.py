"""Soft-voting ensembles: spec files accepted wherever a model name is, one ONNX graph, tuning."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import make_tiny_model, synthetic_faces, write_fer_csv

from emolens.cli import main
from emolens.errors import ModelError
from emolens.evaluation.ensemble import soft_vote, tune_weights
from emolens.models.ensemble import EnsembleSpec
from emolens.runtime import load_classifier, resolve_weights

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two tiny models; the second predicts the same classes in another order, from 44x44 centre crops."""
    import torch
    from conftest import TINY_OPTIONS

    from emolens.models.registry import create_model
    from emolens.models.weights import ModelSpec, Preprocess, save_model

    folder = tmp_path_factory.mktemp("members")
    a = make_tiny_model(folder / "a.safetensors", seed=0)
    torch.manual_seed(1)
    model = create_model("vgg_fer", num_classes=7, **TINY_OPTIONS).eval()
    spec = ModelSpec(name="b", arch="vgg_fer", classes=list(reversed(CLASSES)), options=dict(TINY_OPTIONS),
                     preprocess=Preprocess(input_size=48, channels=1, mean=0.45, std=0.3, crop=44))
    b = save_model(model, spec, folder / "b.safetensors")
    return a, b


def _spec(path, members, weights=(0.7, 0.3)):
    path.write_text(yaml.safe_dump({"name": "vote", "members": [
        {"model": str(members[0]), "weight": weights[0]},
        {"model": f"../{members[1].parent.name}/{members[1].name}", "weight": weights[1]}]}))  # relative to spec
    return path


def _faces(n=9):
    return synthetic_faces(n, seed=5)[0]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_ensemble_spec_works_as_a_model_name(members, tmp_path_factory, backend):
    spec_dir = tmp_path_factory.mktemp("specs")
    spec = _spec(spec_dir / "vote.ensemble.yaml", members)
    faces = _faces()
    clf = load_classifier(str(spec), backend=backend)
    assert clf.classes == list(CLASSES) and clf.spec.arch == "ensemble"
    pa = load_classifier(members[0], backend="torch").predict_proba(faces)
    pb = load_classifier(members[1], backend="torch").predict_proba(faces)[:, ::-1]  # into the first's order
    expected = 0.7 * pa + 0.3 * pb
    np.testing.assert_allclose(clf.predict_proba(faces), expected, atol=1e-5)
    # the packed file is cached by content: resolving twice gives the same file
    assert resolve_weights(str(spec)) == resolve_weights(str(spec))


def test_export_is_one_onnx_graph_averaging_softmax(members, tmp_path):
    import onnx
    import onnxruntime as ort

    spec = _spec(tmp_path / "vote.ensemble.yaml", members)
    out = tmp_path / "vote.onnx"
    assert main(["export", "--model", str(spec), "--out", str(out)]) == 0
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["faces"]
    assert sum(n.op_type == "Softmax" for n in graph.node) == 2  # one per member, inside one graph
    faces = _faces()
    x = ((faces.astype(np.float32) / 255 - 0.5) / 0.25)[:, None]  # the whole 48x48 face
    logp = ort.InferenceSession(str(out)).run(None, {"faces": x})[0]
    probs = np.exp(logp)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    expected = load_classifier(str(spec), backend="torch").predict_proba(faces)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_tune_weights_prefers_the_better_member():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    good = np.full((400, 4), 0.1)
    good[np.arange(400), labels] = 0.7
    noise = rng.dirichlet(np.ones(4), 400)
    w = tune_weights([noise, good], labels, "nll")
    assert w.sum() == pytest.approx(1) and w[1] > 0.8
    w_acc = tune_weights([noise, good], labels, "accuracy", samples=200)
    assert (soft_vote([noise, good], w_acc).argmax(1) == labels).mean() == 1.0
    with pytest.raises(ModelError):
        tune_weights([good, good], labels, "f1")


def test_ensemble_tune_command_then_evaluate(members, tmp_path, capsys):
    images, labels = synthetic_faces(70, seed=2)
    data = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["PublicTest"] * 35 + ["PrivateTest"] * 35)
    out = tmp_path / "specs" / "mine.ensemble.yaml"
    assert main(["ensemble", "tune", "--models", str(members[0]), str(members[1]), "--data", str(data),
                 "--name", "mine", "--out", str(out), "--backend", "torch"]) == 0
    text = capsys.readouterr().out
    assert "soft vote, tuned (nll), in sample" in text and "soft vote, tuned (nll), out of sample" in text
    assert "PublicTest (n=35, 0 with a training twin)" in text and "stored: " in text
    spec = EnsembleSpec.load(out)
    assert spec.tuned["split"] == "PublicTest" and len(spec.members) == 2
    assert "accuracy_out_of_sample" in spec.tuned and spec.tuned["reason"] in text
    if not spec.tuned["ships"]:                                # the tuned weights lost out of sample: equal ones
        assert [m.weight for m in spec.members] == [0.5, 0.5]
    assert not spec.members[0].model.startswith("/")  # stored relative to the spec, so the folder can move
    assert sum(m.weight for m in spec.members) == pytest.approx(1, abs=1e-4)
    assert main(["evaluate", "--model", str(out), "--data", str(data), "--split", "PrivateTest"]) == 0
    assert "accuracy" in capsys.readouterr().out
    packed = tmp_path / "mine.safetensors"
    assert main(["ensemble", "pack", str(out), "--out", str(packed)]) == 0
    assert load_classifier(packed, backend="torch").predict_proba(images[:3]).shape == (3, 7)


def test_bad_ensembles_are_refused(members, tmp_path):
    other = make_tiny_model(tmp_path / "five.safetensors", classes=("angry", "happy", "sad", "surprise", "neutral"))
    bad = tmp_path / "bad.ensemble.yaml"
    bad.write_text(yaml.safe_dump({"members": [str(members[0]), str(other)]}))
    with pytest.raises(ModelError, match="share one class set"):
        load_classifier(str(bad), backend="torch")
    missing = tmp_path / "missing.ensemble.yaml"
    missing.write_text(yaml.safe_dump({"members": [str(members[0]), str(tmp_path / "nope.safetensors")]}))
    with pytest.raises(ModelError, match="no such weights file"):
        load_classifier(str(missing), backend="torch")
    empty = tmp_path / "empty.ensemble.json"
    empty.write_text('{"members": []}')
    with pytest.raises(ModelError, match="needs 'members'"):
        load_classifier(str(empty))
    with pytest.raises(ModelError, match="no such ensemble spec"):
        resolve_weights(str(tmp_path / "absent.ensemble.yaml"))


def test_a_bundled_ensemble_is_one_model_with_a_card_of_its_members(members, tmp_path, tmp_path_factory):
    """scripts/bundle_model.py's ensemble path: the members packed into one network with an ONNX graph,
    whose ONNX Runtime output is the weighted vote, and a card naming each member with its numbers."""
    from emolens.engine.card import bundle_ensemble
    from emolens.runtime.classifier import OnnxClassifier

    images, labels = synthetic_faces(40, seed=3)
    data = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["PublicTest"] * 40)
    spec = _spec(tmp_path_factory.mktemp("specs") / "vote.ensemble.yaml", members, weights=(0.6, 0.4))
    dest, docs = tmp_path / "weights", tmp_path / "docs"
    dest.mkdir()
    weights = bundle_ensemble(spec, dest, docs, "toy-ensemble", str(data), "PublicTest")
    assert weights == dest / "toy-ensemble.safetensors" and (dest / "toy-ensemble.onnx").is_file()
    clf = OnnxClassifier(weights)
    assert clf.spec.arch == "ensemble" and clf.spec.name == "toy-ensemble" and clf.classes == list(CLASSES)
    faces = _faces()
    pa = load_classifier(members[0], backend="torch").predict_proba(faces)
    pb = load_classifier(members[1], backend="torch").predict_proba(faces)[:, ::-1]
    np.testing.assert_allclose(clf.predict_proba(faces, tta="none"), 0.6 * pa + 0.4 * pb, atol=1e-5)
    card = (dest / "toy-ensemble.md").read_text()
    assert card.count("| `vgg_fer` |") == 2 and "| 0.600 |" in card and "| 0.400 |" in card
    assert "Metrics on PublicTest (n = 40)" in card and (docs / "toy-ensemble-confusion_matrix.png").is_file()
    assert "was only reported on, never used to choose" in card          # weights given, not fitted
    tuned = EnsembleSpec.load(spec)
    tuned.tuned = {"split": "PublicTest", "objective": "nll", "n": 40}
    tuned.save(spec)
    bundle_ensemble(spec, dest, docs, "toy-ensemble", str(data), "PublicTest")
    assert "chose the member weights: its numbers are in sample" in (dest / "toy-ensemble.md").read_text()
