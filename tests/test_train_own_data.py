"""`emolens train` on a user's own folder: the bundled recipe's network by default, --pretrained
with its load report (and the refusal of another architecture), the held-out validation split,
quiet output with one line per epoch and a summary of the outputs, and --help with defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import synthetic_faces
from PIL import Image

from emolens.cli import build_parser, main

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TINY = ["--model-option", "widths=[8,16]", "--model-option", "convs_per_stage=1", "--model-option", "hidden=[16]"]
FAST = ["--batch-size", "16", "--threads", "1", "--precision", "32", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """ROOT/<class>/*.png, 10 faces per class of FER-2013's seven, no split folders."""
    root = tmp_path_factory.mktemp("own") / "faces"
    images, labels = synthetic_faces(70, seed=2)
    for i, (face, label) in enumerate(zip(images, labels)):
        path = root / CLASSES[label] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(path)
    return root


def test_the_default_network_is_the_bundled_models():
    """Without options `train` builds the network that ships (0.95 M parameters), not vgg_fer's
    29.9 M-parameter defaults; the options are read from the bundled spec."""
    from emolens.engine.config import TrainConfig
    from emolens.models.registry import count_parameters, create_model
    from emolens.models.weights import load_model
    from emolens.weights import bundled_path

    cfg = TrainConfig(data=["x"]).validate()
    bundled, spec = load_model(bundled_path("ferplus"))
    assert cfg.model == spec.arch
    assert cfg.model_options == {k: v for k, v in spec.options.items() if k != "input_size"}
    model = create_model(cfg.model, num_classes=8, input_size=cfg.augment.crop, **cfg.model_options)
    assert count_parameters(model) == count_parameters(bundled)
    assert count_parameters(model) == 706_512                 # ferplus versions 2 and 3: widths 24-192
    # another architecture takes its own defaults, not the recipe's vgg_fer options
    assert TrainConfig(data=["x"], model="se_resnet").validate().model_options == {}


def test_train_on_a_flat_folder(folder, tmp_path, capfd):
    assert main(["train", "--data", str(folder), *TINY, *FAST, "--epochs", "2", "--out", str(tmp_path),
                 "--name", "mine"]) == 0
    out, err = capfd.readouterr()
    text = out + err
    # the validation split it held out, in numbers per class
    assert "validation: 0.1 of the faces held out, stratified by class (--val-fraction, --val-seed 0)" in out
    assert "  train      63 faces  angry 9, disgust 9," in out and "  val         7 faces  angry 1, disgust 1," in out
    # one line per epoch with rate and time left, then where everything is
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert all("val_acc" in line and "faces/s, ETA" in line for line in epoch_lines)
    run = tmp_path / "mine"
    for what, path in (("weights", run / "model" / "mine.safetensors"), ("metrics", run / "metrics.json"),
                       ("checkpoint", run / "checkpoints" / "best.ckpt"), ("config", run / "config.yaml")):
        assert f"  {what:<17} {path}" in out and path.exists()
    assert json.loads((run / "metrics.json").read_text())["split"] == "val"
    # Lightning's tips, adverts and hardware inventory are gone
    for chatter in ("Tip", "litlogger", "litmodels", "GPU available", "TPU available", "💡", "LOCAL_RANK",
                    "does not have many workers"):
        assert chatter not in text, chatter


def _parameters(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if not k.endswith(("running_mean", "running_var",
                                                                             "num_batches_tracked"))}


def test_pretrained_ferplus_fine_tunes_the_default_network(folder, tmp_path, capfd):
    """The documented fine-tuning command: every tensor loads, the 8-class output layer too, its
    rows carried over by class name to the folder's 7 classes (before, it was skipped for shape and
    started from random, so a short fine-tune made the model worse than none)."""
    from emolens.weights import bundled_path

    assert main(["train", "--data", str(folder), "--pretrained", "ferplus", *FAST, "--epochs", "1", "--lr", "0",
                 "--schedule", "none", "--out", str(tmp_path), "--name", "ft"]) == 0
    out = capfd.readouterr().out
    assert ("pretrained ferplus: loaded 50 of 50 tensors, 0 skipped for shape, 0 missing (kept fresh); "
            "output layer head.7 mapped by class name: 7 of 7 classes copied from the file's 8 "
            "(angry, disgust, fear, happy, sad, surprise, neutral), 0 new") in out
    # with lr 0 the exported network is the bundled one, its output rows in the folder's class order
    mine, shipped = _parameters(tmp_path / "ft" / "model" / "ft.safetensors"), _parameters(bundled_path("ferplus"))
    differ = {k for k in mine if mine[k].shape != shipped[k].shape or not torch.equal(mine[k], shipped[k])}
    assert differ == {"head.7.weight", "head.7.bias"} and mine["head.7.weight"].shape[0] == 7
    classes = json.loads((tmp_path / "ft" / "model" / "ft.json").read_text())["classes"]
    ferplus = json.loads(bundled_path("ferplus").with_suffix(".json").read_text())["classes"]
    assert sorted(classes) == sorted(CLASSES)
    for k in differ:
        assert torch.equal(mine[k], shipped[k][[ferplus.index(c) for c in classes]]), k


@pytest.mark.parametrize("flags", [["--set", "pretrained=ferplus", "--set", "model_options={}"],
                                   ["--pretrained", "ferplus", *TINY]])
def test_pretrained_weights_of_another_architecture_are_refused(folder, tmp_path, capfd, flags):
    """The old default (vgg_fer's own options) loaded only 5 num_batches_tracked tensors from ferplus
    and trained from random weights without a word; now it is a one-line error naming both."""
    assert main(["train", "--data", str(folder), *flags, *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("emolens: error: pretrained ferplus: only ") and "\n" not in err
    assert "the file holds vgg_fer {'widths': [24, 48, 96, 192]" in err
    if "model_options={}" in flags:
        assert "only 5 of the network's 62 tensors load" in err and "the network is vgg_fer (29.90 M parameters)" in err
    else:
        assert "the network is vgg_fer {'widths': [8, 16]" in err


def test_bad_val_fraction_is_one_line(folder, tmp_path, capfd):
    assert main(["train", "--data", str(folder), *TINY, *FAST, "--val-fraction", "0.05", "--out", str(tmp_path)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith(f"emolens: error: {folder}: --val-fraction 0.05 holds out 4 of 70 faces") and "\n" not in err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_every_flag_documents_its_default(command):
    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions).choices[command]
    undocumented = [a.option_strings[0] for a in sub._actions
                    if a.option_strings and a.dest != "help" and "default" not in (a.help or "")
                    and "required" not in (a.help or "")]
    assert not undocumented, undocumented


def test_the_held_out_faces_follow_val_seed_not_the_training_seed(folder):
    """Runs that differ only in their training seed (repeats, ensemble members) validate on the same faces."""
    from emolens.engine.config import TrainConfig
    from emolens.engine.train import prepare_data

    def val_paths(**keys):
        return list(prepare_data(TrainConfig(data=[str(folder)], **keys).validate()).val.paths)

    assert val_paths(seed=0) == val_paths(seed=5)
    assert val_paths(val_seed=0) != val_paths(val_seed=1)
    assert len(val_paths(val_fraction=0.2)) == 14


def test_options_change_the_recipes_network_and_another_model_drops_them(tmp_path):
    from emolens.cli.engine import train_overrides
    from emolens.tasks import train_config

    def config(*flags):
        args = build_parser().parse_args(["train", "--data", "x", *flags])
        return train_config(args.config, **train_overrides(args)).validate()

    recipe = config().model_options
    assert config("--model-option", "dropout=0.2").model_options == {**recipe, "dropout": 0.2}
    assert config("--set", "model_options.dropout=0.2").model_options == {**recipe, "dropout": 0.2}
    assert config("--model", "compact_cnn").model_options == {}
    base = tmp_path / "c.yaml"
    base.write_text("data: x\nmodel: vgg_fer\nmodel_options: {widths: [8, 16]}\n")
    assert config("--config", str(base)).model_options == {"widths": [8, 16]}
    assert config("--config", str(base), "--model", "compact_cnn", "--model-option", "hidden=32").model_options == \
        {"hidden": 32}


def test_a_train_folder_alone_gets_its_validation_part_held_out(folder, tmp_path):
    """ROOT/train/<class>/* without val/ or test/: the validation part comes out of train, never from
    elsewhere; with a test/ folder beside it, that folder validates."""
    import shutil

    from emolens.engine.config import TrainConfig
    from emolens.engine.train import prepare_data

    root = tmp_path / "split"
    shutil.copytree(folder, root / "train")
    parts = prepare_data(TrainConfig(data=[str(root)]).validate())
    assert parts.held_out and parts.how.startswith("0.1 of the train split held out")
    assert (len(parts.train), len(parts.val)) == (63, 7)
    shutil.copytree(folder / "happy", root / "test" / "happy")
    shutil.copytree(folder / "sad", root / "test" / "sad")
    parts = prepare_data(TrainConfig(data=[str(root)]).validate())
    assert not parts.held_out and parts.how == "the data's test split" and len(parts.val) == 20
