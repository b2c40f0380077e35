"""`emolens average`: weight averaging of models and run checkpoints, batch-norm statistics measured again."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_OPTIONS, make_tiny_model, synthetic_faces, write_fer_csv

from emolens.cli import main
from emolens.engine.average import average_models, average_states, recalibrate_batchnorm
from emolens.errors import ModelError
from emolens.models.weights import load_model


def test_average_is_the_weighted_mean_of_every_float_tensor(tmp_path):
    a = make_tiny_model(tmp_path / "a.safetensors", seed=0)
    b = make_tiny_model(tmp_path / "b.safetensors", seed=1)
    (ma, _), (mb, _) = load_model(a), load_model(b)
    model, spec = average_models([str(a), str(b)], weights=[3, 1])
    sa, sb, avg = ma.state_dict(), mb.state_dict(), model.state_dict()
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    assert floats and any(not torch.equal(sa[k], sb[k]) for k in floats)
    for key in floats:
        assert torch.allclose(avg[key], 0.75 * sa[key] + 0.25 * sb[key], atol=1e-6), key
    for key in set(sa) - set(floats):  # batch norm's step counter: the first model's
        assert torch.equal(avg[key], sa[key])
    assert spec.arch == "vgg_fer" and spec.options == TINY_OPTIONS and not model.training


def test_averaging_a_model_with_itself_changes_nothing(tmp_path):
    a = make_tiny_model(tmp_path / "a.safetensors")
    model, _ = average_models([str(a), str(a)])
    original, _ = load_model(a)
    x = torch.randn(5, 1, 48, 48)
    assert torch.allclose(model(x), original(x), atol=1e-6)


def test_batchnorm_statistics_are_those_of_the_given_faces(tmp_path):
    model, spec = load_model(make_tiny_model(tmp_path / "a.safetensors"))
    first_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first_bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    faces, _ = synthetic_faces(64, seed=3)
    assert recalibrate_batchnorm(model, spec, faces, batch_size=64) >= 1
    x = seen[-1]
    assert torch.allclose(first_bn.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(first_bn.running_var, x.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    assert not model.training and first_bn.momentum == 0.1  # restored


def test_models_of_different_shapes_or_classes_are_refused(tmp_path):
    a = make_tiny_model(tmp_path / "a.safetensors")
    five = make_tiny_model(tmp_path / "five.safetensors", classes=("angry", "happy", "sad", "surprise", "neutral"))
    with pytest.raises(ModelError, match="five.safetensors: its classes"):
        average_models([str(a), str(five)])
    with pytest.raises(ModelError, match="only networks of one architecture"):
        average_states([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}], names=["x", "y"])
    with pytest.raises(ModelError, match="non-negative weight"):
        average_states([{"w": torch.zeros(2)}], weights=[-1])


def test_cli_averages_a_runs_checkpoints_and_evaluates(tmp_path, capsys):
    images, labels = synthetic_faces(140, seed=1)
    data = write_fer_csv(tmp_path / "fer.csv", images, labels, ["Training"] * 105 + ["PublicTest"] * 35)
    opts = [x for k, v in TINY_OPTIONS.items() for x in ("--model-option", f"{k}={v}".replace(" ", ""))]
    assert main(["train", "--data", str(data), "--model", "vgg_fer", *opts, "--epochs", "3", "--batch-size", "32",
                 "--set", "export_checkpoint=last", "--set", "keep_epochs=2", "--out", str(tmp_path), "--name", "run",
                 "--no-progress", "--threads", "1", "--precision", "32"]) == 0   # the same numbers on any CPU
    run = tmp_path / "run"
    # keep_epochs=2 keeps the last two epochs' checkpoints; the last of them is last.ckpt's network
    kept = sorted(p.name for p in (run / "checkpoints").glob("epoch*.ckpt"))
    assert kept == ["epoch01.ckpt", "epoch02.ckpt"]
    final = torch.load(run / "checkpoints" / "epoch02.ckpt", map_location="cpu", weights_only=False)
    assert final["epoch"] == 2  # 0-based, as in the file name
    state, last = final["state_dict"], torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu",
                                                   weights_only=False)["state_dict"]
    assert all(torch.equal(state[k], last[k]) for k in last)
    exported = run / "model" / "run.safetensors"
    soup = tmp_path / "soup.safetensors"
    # the last checkpoint averaged with the model exported from it: the same network
    assert main(["average", str(run / "checkpoints" / "last.ckpt"), str(exported), "--out", str(soup)]) == 0
    x = torch.randn(4, 1, 44, 44)
    assert torch.allclose(load_model(soup)[0](x), load_model(exported)[0](x), atol=1e-5)
    # with training faces for the batch-norm statistics; then it evaluates like any model
    recal = tmp_path / "recal.safetensors"
    assert main(["average", str(run / "checkpoints" / "last.ckpt"), "--out", str(recal), "--data", str(data)]) == 0
    assert "batch-norm statistics from 105 faces of Training" in capsys.readouterr().out
    assert not torch.allclose(load_model(recal)[0](x), load_model(exported)[0](x), atol=1e-5)
    assert main(["evaluate", "--model", str(recal), "--data", str(data), "--split", "PublicTest"]) == 0
    _check_record_and_card(tmp_path, run, recal, data)
    # bad input: one line naming the problem
    for argv, message in [
        (["average", str(tmp_path / "gone.ckpt"), "--out", str(soup)], "gone.ckpt: no such checkpoint"),
        (["average", str(exported), "--out", str(tmp_path / "x.pt")], "give a .safetensors path"),
        (["average", str(exported), str(exported), "--weights", "1", "--out", str(soup)], "1 weights for 2 models"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def _check_record_and_card(tmp_path, run, soup, data):
    """The record beside an average names its members and how they were trained; bundling it writes a
    card with the model's measured numbers and that member list."""
    import json

    from emolens.engine.average import read_record
    from emolens.engine.card import bundle_average
    from emolens.evaluation.metrics import compute_metrics
    from emolens.runtime.classifier import ModuleClassifier

    record = read_record(soup)
    metrics = json.loads((run / "metrics.json").read_text())
    assert record["command"] == f"emolens average {run / 'checkpoints' / 'last.ckpt'} --out {soup} --data {data} --split Training"
    assert [m["model"] for m in record["members"]] == [str(run / "checkpoints" / "last.ckpt")]
    made = record["members"][0]["made"]
    assert made.startswith("checkpoint last.ckpt of run `run`: vgg_fer, from random weights, 3 epochs") and "seed 0" in made
    assert record["batchnorm"] == {"data": [str(data)], "split": "Training", "faces": 105}
    assert isinstance(record["train_seconds"], float) and record["train_seconds"] == metrics["train_seconds"]

    weights = bundle_average(soup, tmp_path / "pkg", tmp_path / "docs", "souped", [str(data)], "PublicTest",
                             trained_on="test box", version="2", selection="split `PublicTest` chose nothing")
    model, spec = load_model(weights)  # checksum verified on load
    from emolens.data import load_dataset

    val = load_dataset([str(data)]).split("PublicTest")
    expected = compute_metrics(val.labels, ModuleClassifier(model, spec, raw=True).predict_proba(val.images, tta="none").argmax(1),
                               spec.classes)
    card = (tmp_path / "pkg" / "souped.md").read_text()
    assert spec.name == "souped" and spec.version == "2" and spec.metrics["accuracy"] == expected.accuracy
    assert f"| one pass (the recognition pipeline's default, for speed) | {expected.accuracy:.2%} |" in card
    assert "the weighted mean of 1 networks" in card and f"1. `{run / 'checkpoints' / 'last.ckpt'}` (weight 1): {made}" in card
    assert "- split `PublicTest` chose nothing" in card and "- hardware: test box" in card
    assert (tmp_path / "docs" / "souped-confusion_matrix.png").stat().st_size > 0
    assert "learning curves" not in card


def test_a_model_file_member_is_described_by_its_spec(tmp_path):
    from emolens.engine.average import describe_member
    from emolens.models.weights import read_spec

    path = make_tiny_model(tmp_path / "old.safetensors")
    spec = read_spec(path)
    assert describe_member(str(path)) == (f"the model file {path} (`old` version {spec.version}, "
                                          f"sha256 {spec.sha256[:12]})")
    path.with_suffix(".json").unlink()
    assert describe_member(str(path)) == f"the model file {path}"


def test_a_negative_keep_epochs_is_refused():
    from emolens.engine.config import TrainConfig
    from emolens.errors import EmolensError

    with pytest.raises(EmolensError, match="keep_epochs must not be negative, not -1"):
        TrainConfig(data=["x"], keep_epochs=-1).validate()
