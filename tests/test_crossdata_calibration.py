"""Cross-data-set evaluation, calibration and operating points, the "uncertain" label, and the
training remedies for class imbalance (logit-adjusted loss, both label sets, head re-training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import emolens
from emolens.cli import main
from emolens.evaluation.calibration import (calibrate, expected_calibration_error, fit_operating_point,
                                            plot_reliability)
from emolens.evaluation.crossdata import score
from emolens.models.calibration import Calibration, softmax

from conftest import make_tiny_model, synthetic_faces, write_fer_csv

MODEL3 = ["neutral", "happy", "angry"]


# ------------------------------------------------------------------ cross-data-set scores

def test_score_leaves_out_classes_the_model_lacks_and_restricts_the_argmax():
    probs = np.array([[0.2, 0.7, 0.1],     # happy: right
                      [0.6, 0.1, 0.3],     # angry: neutral wins the full argmax, angry the restricted one
                      [0.1, 0.2, 0.7],     # angry: right
                      [0.5, 0.4, 0.1]])    # contempt: the model lacks it -> left out
    m = score(probs, ["happy", "anger", "angry", "contempt"], MODEL3, samples=200)
    assert m.n == 3 and m.accuracy == pytest.approx(2 / 3)
    assert m.extra["accuracy_restricted"] == pytest.approx(1.0)
    assert m.extra["restricted_to"] == ["happy", "angry"]
    assert m.extra["left_out"] == {"contempt": 1} and m.extra["n_left_out"] == 1
    assert m.extra["recall"] == {"happy": 1.0, "angry": 0.5}
    assert m.extra["predicted"] == {"neutral": 1, "happy": 1, "angry": 1}
    assert m.confusion_matrix[2] == [1, 0, 1]           # true angry: one to neutral, one right
    # macro-F1 over the data's two classes only: happy F1 1.0, angry F1 2/3
    assert m.macro_f1 == pytest.approx((1.0 + 2 / 3) / 2)
    lo, hi = m.extra["ci95"]["accuracy"]
    assert 0 <= lo <= m.accuracy <= hi <= 1 and m.extra["resampled_by"] == "image"


def test_score_on_a_class_set_and_faces_not_found():
    probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.0, 0.0, 0.0]])
    m = score(probs, ["happy", "angry", "happy"], MODEL3, classes="happy,angry",
              found=np.array([True, True, False]), samples=100)
    # argmax over happy/angry only; the third image had no face: wrong in both views
    assert m.extra["argmax_over"] == ["happy", "angry"]
    assert m.accuracy == pytest.approx(2 / 3) and m.extra["accuracy_restricted"] == pytest.approx(2 / 3)
    with pytest.raises(emolens.errors.DataError, match="does not predict contempt"):
        score(probs, ["happy", "angry", "happy"], MODEL3, classes="happy,contempt")


def test_confidence_interval_resamples_subjects_not_images():
    # 40 images of 4 subjects: two subjects always right, two always wrong
    correct = np.repeat([1, 1, 0, 0], 10).astype(bool)
    labels = ["happy"] * 40
    probs = np.where(correct[:, None], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1])
    by_image = score(probs, labels, MODEL3, samples=500)
    by_subject = score(probs, labels, MODEL3, groups=np.repeat(list("abcd"), 10), samples=500)
    assert by_subject.extra["resampled_by"] == "subject (4 groups)"
    w_img = np.diff(by_image.extra["ci95"]["accuracy"])[0]
    w_sub = np.diff(by_subject.extra["ci95"]["accuracy"])[0]
    assert w_sub > 1.5 * w_img                     # 4 independent units, not 40


def _crop_folder(root, with_subjects=True):
    """ROOT/<class>/*.png crops (no split level) of three classes, one the 7-class model lacks."""
    images, labels = synthetic_faces(9, n_classes=3, seed=4)
    names = ["happy", "sad", "contempt"]
    rows = ["path,subject"]
    for i, (img, lab) in enumerate(zip(images, labels)):
        path = root / names[lab] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        rows.append(f"{names[lab]}/{i}.png,S{i % 3}")
    if with_subjects:
        (root / "subjects.csv").write_text("\n".join(rows) + "\n")
    return root


def test_evaluate_a_flat_folder_needs_no_split_and_reports_both_views(tmp_path, tiny_model, capsys):
    root = _crop_folder(tmp_path / "ck")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(root), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "argmax over 7 classes" in text and "argmax restricted to the data's 2 classes (happy, sad)" in text
    assert "left out (class not evaluated): contempt 3" in text
    assert "resampled by subject (2 groups)" in text       # happy rows are S0, sad rows S1
    m = json.loads(out.read_text())
    assert m["n"] == 6 and m["left_out"] == {"contempt": 3}
    # the numbers are the model's own: recompute from its probabilities
    clf = emolens.runtime.load_classifier(str(tiny_model))
    from emolens.data import load_dataset

    ds = load_dataset(str(root))
    keep = np.array([ds.class_names[k] != "contempt" for k in ds.labels])
    probs = clf.predict_proba(ds.images[keep], tta=clf.spec.tta)
    truth = np.array([clf.classes.index(ds.class_names[k]) for k in ds.labels[keep]])
    assert m["accuracy"] == pytest.approx(float((probs.argmax(1) == truth).mean()))


# ------------------------------------------------------------------ calibration

def test_expected_calibration_error_by_hand():
    probs = np.tile([0.9, 0.1], (10, 1))
    assert expected_calibration_error(probs, np.array([0] * 9 + [1])) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.ones(10, int)) == pytest.approx(0.9)
    # two bins: 0.9 confident and all right (gap 0.1), 0.6 confident and half right (gap 0.1)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 0, 0, 0, 1, 1])) == pytest.approx(0.1)


def _overconfident(n=4000, classes=4, seed=0, prior=(0.55, 0.25, 0.15, 0.05)):
    rng = np.random.default_rng(seed)
    labels = rng.choice(classes, size=n, p=prior)
    logits = rng.normal(0, 1, size=(n, classes)) + 1.2 * np.eye(classes)[labels] + np.log(prior)
    return (4.0 * logits).astype(np.float32), labels, np.array(prior)   # x4: far too sure


def test_calibration_brings_the_error_down_and_keeps_the_argmax_without_operating_point():
    logits, labels, prior = _overconfident()
    cal = calibrate(logits, labels, prior, operating_point=False)
    assert cal.ece_before > 0.1 and cal.ece_after < 0.03
    assert cal.ece_after == pytest.approx(expected_calibration_error(softmax(cal.apply(logits)), labels), abs=1e-4)
    assert not any(cal.logit_bias)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_operating_point_raises_balanced_accuracy_within_the_accuracy_budget():
    from sklearn.metrics import balanced_accuracy_score

    logits, labels, prior = _overconfident(seed=1)
    tau = fit_operating_point(logits, labels, prior, max_accuracy_drop=0.01)
    raw, adjusted = logits.argmax(1), (logits - tau * np.log(prior)).argmax(1)
    assert (adjusted == labels).mean() >= (raw == labels).mean() - 0.01
    assert balanced_accuracy_score(labels, adjusted) > balanced_accuracy_score(labels, raw) + 0.02
    assert (adjusted == 3).sum() > (raw == 3).sum()         # the rarest class is predicted more often


def test_reliability_diagram_is_written(tmp_path):
    logits, labels, _ = _overconfident(n=500)
    plot_reliability(tmp_path / "r.png", {"raw": (softmax(logits), labels)})
    assert Image.open(tmp_path / "r.png").size[0] > 200


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_runtime_applies_the_stored_calibration_and_raw_skips_it(tmp_path, backend):
    from emolens.models.weights import read_spec
    from emolens.runtime import load_classifier

    path = make_tiny_model(tmp_path / f"cal_{backend}.safetensors")
    spec_path = path.with_suffix(".json")
    spec = json.loads(spec_path.read_text())
    cal = Calibration(temperature=0.5, scale=[1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.5], logit_bias=[0.3, 0, 0, -0.2, 0, 1.0, 0])
    spec["calibration"] = cal.to_dict()
    spec_path.write_text(json.dumps(spec))
    assert read_spec(path).calibration["temperature"] == 0.5
    faces, _ = synthetic_faces(6)
    clf, raw = load_classifier(str(path), backend=backend), load_classifier(str(path), backend=backend, raw=True)
    z = raw.view_logits(faces, "flip")
    np.testing.assert_allclose(raw.predict_proba(faces, tta="flip"), softmax(z).mean(0), atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(faces, tta="flip"), softmax(cal.apply(z)).mean(0), atol=1e-5)
    assert not np.allclose(clf.predict_proba(faces), raw.predict_proba(faces), atol=1e-3)


def test_calibrate_command_stores_calibration_in_a_copy(tmp_path, capsys):
    images, labels = synthetic_faces(140, seed=3)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 70 + ["PublicTest"] * 70)
    model = make_tiny_model(tmp_path / "m.safetensors")
    out = tmp_path / "cal" / "m_cal.safetensors"
    assert main(["calibrate", "--model", str(model), "--data", str(csv), "--out", str(out),
                 "--plot", str(tmp_path / "rel.png"), "--no-ship-rule"]) == 0
    text = capsys.readouterr().out
    assert "fitted on PublicTest (n=70, one pass)" in text and "ECE (15 bins) one pass" in text
    assert (tmp_path / "rel.png").exists()
    stored = json.loads(out.with_suffix(".json").read_text())["calibration"]
    assert stored["fitted_on"].startswith("PublicTest") and len(stored["logit_bias"]) == 7
    assert json.loads(model.with_suffix(".json").read_text()).get("calibration", {}) == {}   # original untouched
    assert out.read_bytes() == model.read_bytes()                                            # same weights


def test_a_calibrated_copy_of_a_model_that_ships_onnx_ships_its_own(tmp_path):
    """A trained run's model ships NAME.onnx; its calibrated copy elsewhere must load through ONNX Runtime."""
    from emolens.runtime import load_classifier
    from emolens.runtime.onnx_model import ship_onnx

    images, labels = synthetic_faces(140, seed=5)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 70 + ["PublicTest"] * 70)
    model = make_tiny_model(tmp_path / "run" / "m.safetensors")
    ship_onnx(model)
    out = tmp_path / "elsewhere" / "m_cal.safetensors"
    emolens.calibrate(str(model), [str(csv)], out=out, ship_rule=False)
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["onnx"]["file"] == "m_cal.onnx" and out.with_suffix(".onnx").is_file()
    clf = load_classifier(str(out))
    assert clf.backend == "onnx" and clf.calibration.strength
    raw = load_classifier(str(model), raw=True).predict_proba(images[:5])
    assert load_classifier(str(out), raw=True).predict_proba(images[:5]) == pytest.approx(raw, abs=1e-6)


# ------------------------------------------------------------------ uncertain faces

def test_min_confidence_marks_uncertain_faces_in_every_output(tmp_path):
    from emolens.assets import ASTRONAUT

    rec = emolens.Recognizer(min_confidence=0.999)
    frame = rec.predict(ASTRONAUT)
    assert len(frame.faces) == 1
    face = frame.faces[0]
    assert face.label == "uncertain" and face.confidence < 0.999
    assert max(face.probabilities, key=face.probabilities.get) == "happy"       # kept
    assert json.loads(frame.to_json())["faces"][0]["label"] == "uncertain"
    assert frame.to_pandas()["label"].tolist() == ["uncertain"]
    sure = emolens.Recognizer().predict(ASTRONAUT).faces[0]
    assert sure.label == "happy" and sure.probabilities == pytest.approx(face.probabilities)
    # the CLI: CSV and an annotated image
    csv = tmp_path / "f.csv"
    assert main(["predict", str(ASTRONAUT), "--min-confidence", "0.999", "--csv", str(csv),
                 "--save-dir", str(tmp_path / "ann"), "-q"]) == 0
    assert ",uncertain," in csv.read_text()
    assert len(list((tmp_path / "ann").iterdir())) == 1


def test_tracker_keeps_the_uncertain_rule_after_smoothing():
    from emolens.vision.results import FaceResult, FrameResult
    from emolens.vision.tracking import FaceTracker

    tracker = FaceTracker(half_life=1.0, min_confidence=0.6)
    probs = [{"happy": 0.9, "sad": 0.1}, {"happy": 0.1, "sad": 0.9}]
    labels = []
    for t, p in enumerate(probs):
        face = FaceResult(box=(0, 0, 10, 10), score=1.0, label=max(p, key=p.get), confidence=max(p.values()),
                          probabilities=dict(p))
        labels.append(tracker.update(FrameResult(faces=[face]), now=float(t)).faces[0].label)
    assert labels == ["happy", "uncertain"]          # the smoothed mix is 50/50 after one half-life


# ------------------------------------------------------------------ training remedies

VOTE_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def test_both_label_sets_mix_the_fer2013_label_into_the_vote_distribution(tmp_path):
    from emolens.data.ferplus import read_ferplus

    images, _ = synthetic_faces(2)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, np.array([3, 0]), ["Training"] * 2)  # happy, angry
    votes = tmp_path / "v.csv"
    votes.write_text(VOTE_HEADER + "\nTraining,a,10,0,0,0,0,0,0,0,0,0\nTraining,b,5,0,0,0,5,0,0,0,0,0\n")
    ds = read_ferplus(csv, votes, fer2013_label_weight=0.4)
    np.testing.assert_allclose(ds.soft_labels[0], [0.6, 0.4, 0, 0, 0, 0, 0, 0])    # neutral votes + FER-2013 happy
    np.testing.assert_allclose(ds.soft_labels[1], [0.3, 0, 0, 0, 0.7, 0, 0, 0])    # half/half votes + angry
    assert list(ds.labels) == [0, 0]                                                # majority stays FER+'s


def test_logit_adjusted_loss_shifts_the_logits_by_the_log_prior():
    from emolens.engine.config import TrainConfig
    from emolens.engine.module import FERModule

    prior = np.array([0.7, 0.2, 0.1])
    cfg = TrainConfig(data=["x"], logit_adjust=1.0, label_smoothing=0.0)
    module = FERModule(torch.nn.Linear(2, 3), cfg, class_prior=prior)
    logits = torch.tensor([[1.0, 0.5, -0.2]])
    target = torch.tensor([[0.0, 1.0, 0.0]])
    expected = torch.nn.functional.cross_entropy(logits + torch.log(torch.tensor(prior, dtype=torch.float32)),
                                                 torch.tensor([1]))
    assert module._loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    plain = FERModule(torch.nn.Linear(2, 3), TrainConfig(data=["x"]), class_prior=prior)
    assert plain._loss(logits, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor([1])).item(), rel=1e-5)


def test_retrain_head_fits_a_new_class_set_on_frozen_features(tmp_path, capsys):
    from emolens.models.weights import load_model

    images, labels = synthetic_faces(120, n_classes=3, seed=5)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 90 + ["PublicTest"] * 30)
    base = make_tiny_model(tmp_path / "base.safetensors")                       # 7 classes
    out = tmp_path / "head.safetensors"
    assert main(["retrain-head", "--model", str(base), "--data", str(csv), "--classes", "angry,disgust,fear",
                 "--out", str(out)]) == 0
    assert "validation accuracy" in capsys.readouterr().out
    new, spec = load_model(out)
    old, _ = load_model(base)
    assert spec.classes == ["angry", "disgust", "fear"] and new.head[-1].out_features == 3
    assert torch.equal(new.features[0].weight, old.features[0].weight)            # frozen features kept


def test_a_seven_class_teacher_mixes_into_fer_plus_votes(tmp_path, tiny_model):
    from emolens.data.ferplus import read_ferplus
    from emolens.engine.distill import teacher_probabilities, with_teacher_labels
    from emolens.runtime import load_classifier

    images, labels = synthetic_faces(3)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 3)
    votes = tmp_path / "v.csv"
    votes.write_text(VOTE_HEADER + "\n" + "\n".join(["Training,a,0,0,0,0,0,0,0,10,0,0"] * 3) + "\n")  # contempt
    ds = read_ferplus(csv, votes)
    taught = with_teacher_labels(ds, str(tiny_model), tta="none", mix=0.25)
    own = load_classifier(str(tiny_model), raw=True).predict_proba(ds.images, tta="none")
    mapped = teacher_probabilities(str(tiny_model), ds, "none")
    assert mapped[:, ds.class_names.index("contempt")].tolist() == [0, 0, 0]          # the teacher lacks it
    np.testing.assert_allclose(mapped[:, ds.class_names.index("happy")], own[:, 3], atol=1e-6)
    np.testing.assert_allclose(taught.soft_labels, 0.25 * mapped + 0.75 * np.eye(8)[[7, 7, 7]], atol=1e-6)
