"""`emolens train` end to end on a small synthetic set: outputs, a kill, --resume, and evaluate."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import cli_command, synthetic_faces, write_fer_csv

from emolens.cli import main

TINY = ["--model", "vgg_fer", "--model-option", "widths=[8,16]", "--model-option", "convs_per_stage=1",
        "--model-option", "hidden=[16]", "--model-option", "global_pool=false"]
# The synthetic classes are told apart by the row of a bright bar: keep geometry fixed when learning them.
NO_WARP = ["--set", "augment.rotation=0", "--set", "augment.shift=0", "--set", "augment.zoom=0",
           "--set", "augment.crop=48", "--set", "augment.erase=0"]


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    images, labels = synthetic_faces(280, seed=1)
    usages = ["Training"] * 210 + ["PublicTest"] * 70
    return write_fer_csv(tmp_path_factory.mktemp("data") / "fer2013.csv", images, labels, usages)


def _epochs_logged(run_dir) -> list[int]:
    with open(run_dir / "logs" / "metrics.csv") as f:
        return sorted({int(r["epoch"]) for r in csv.DictReader(f) if r.get("val_acc")})


def test_train_writes_weights_reports_and_learns(data_csv, tmp_path, capsys):
    args = ["train", "--data", str(data_csv), *TINY, "--epochs", "6", "--batch-size", "16", "--lr", "0.01",
            *NO_WARP, "--precision", "32",
            "--optimizer", "sgd", "--schedule", "cosine", "--balance", "oversample", "--label-smoothing", "0.05",
            "--out", str(tmp_path), "--name", "run1", "--no-progress", "--threads", "1"]
    assert main(args) == 0
    run = tmp_path / "run1"
    for name in ("config.yaml", "metrics.json", "report.txt", "confusion_matrix.png", "curves.png",
                 "checkpoints/last.ckpt", "model/run1.safetensors", "model/run1.json", "logs/metrics.csv"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 70 and metrics["split"] == "PublicTest"
    assert metrics["accuracy"] > 0.5          # the synthetic classes are easy; chance is 1/7
    assert _epochs_logged(run) == list(range(6))
    spec = json.loads((run / "model" / "run1.json").read_text())
    assert spec["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    # the exported model evaluates to the same accuracy through ONNX Runtime
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run / "model" / "run1.safetensors"), "--data", str(data_csv),
                 "--split", "PublicTest", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(metrics["accuracy"], abs=1 / 70)
    # a second run into the same folder is refused rather than overwriting it
    assert main(args) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    _check_bundle(run, tmp_path, metrics)


def _check_bundle(run, tmp_path, metrics):
    """scripts/bundle_model.py's step: weights + spec + card, the card's numbers from the run."""
    import hashlib

    from emolens.engine.card import bundle
    from emolens.models.weights import load_model

    weights = bundle(run, tmp_path / "pkg", tmp_path / "docs", "tiny", "emolens train ...", "test box", tta="flip",
                     speed="1.0 ms per face")
    model, spec = load_model(weights)                       # checksum verified on load
    card = (tmp_path / "pkg" / "tiny.md").read_text()
    assert spec.name == "tiny" and spec.tta == "flip" and 0 <= spec.metrics["flip_accuracy"] <= 1
    assert spec.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest() and f"sha256 `{spec.sha256}`" in card
    assert f"| one pass (the recognition pipeline's default, for speed) | {metrics['accuracy']:.2%} |" in card
    assert f"**{spec.metrics['flip_accuracy']:.2%}**" in card
    assert "- initial weights: random (trained from scratch)" in card and "- hardware: test box" in card
    assert card.endswith("## Speed\n\n1.0 ms per face\n")
    assert (tmp_path / "docs" / "tiny-confusion_matrix.png").exists()


def test_killed_run_resumes_from_checkpoint(data_csv, tmp_path):
    cmd = cli_command("train", "--data", str(data_csv), *TINY, "--epochs", "200", "--batch-size", "16",
                      "--precision", "32", "--schedule", "cosine", "--out", str(tmp_path), "--name", "r",
                      "--no-progress", "--threads", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / "r" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    # three epochs logged: epoch 1's checkpoint is surely written (an epoch's metrics are logged just
    # before its checkpoint, so waiting for two would race the writer)
    while time.time() < deadline and not (last.exists() and len(_epochs_logged_safe(tmp_path / "r")) >= 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    done = _epochs_logged_safe(tmp_path / "r")
    assert done and max(done) < 199
    # atomic writes: whatever the kill interrupted, last.ckpt is a whole checkpoint (a write in flight
    # is a temporary file beside it, which the resume removes)
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] >= 1
    # resume with a smaller epoch budget: training continues from the checkpoint, not from zero
    target = max(done) + 3
    assert main(["train", "--resume", "--out", str(tmp_path), "--name", "r", "--epochs", str(target),
                 "--no-progress"]) == 0
    logged = _epochs_logged(tmp_path / "r")
    assert logged[-1] == target - 1
    assert not list((tmp_path / "r" / "checkpoints").glob("*.tmp"))
    # the epochs logged before the kill are kept beside the resumed log, and the curves show both
    part = tmp_path / "r" / "logs" / "metrics-part1.csv"
    with open(part) as f:
        assert {int(r["epoch"]) for r in csv.DictReader(f) if r.get("val_acc")} >= set(done[:-1])
    assert (tmp_path / "r" / "curves.png").exists()
    weights = tmp_path / "r" / "model" / "r.safetensors"
    spec = json.loads(weights.with_suffix(".json").read_text())
    # trained on random 44x44 crops (the default): the model sees the matching centre crop
    assert spec["preprocess"]["input_size"] == 48 and spec["preprocess"]["crop"] == 44
    from emolens.runtime import load_classifier

    probs = load_classifier(weights).predict_proba(np.zeros((3, 48, 48), np.uint8))
    assert probs.shape == (3, 7)


def _epochs_logged_safe(run_dir):
    try:
        return _epochs_logged(run_dir)
    except (OSError, KeyError, ValueError):
        return []


def test_resume_without_run_is_clear(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path), "--name", "nothing"]) == 2
    assert "--resume: no run at" in capsys.readouterr().err


def test_bad_config_key_is_clear(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: x.csv\nepoch: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown config key(s) epoch" in capsys.readouterr().err


def test_bad_precision_is_clear(data_csv, tmp_path, capsys):
    assert main(["train", "--data", str(data_csv), *TINY, "--precision", "fp8", "--out", str(tmp_path)]) == 2
    assert "unknown precision 'fp8'" in capsys.readouterr().err


def test_auto_precision_takes_bfloat16_only_where_the_cpu_has_it():
    """Emulated bfloat16 on an AVX2-only CPU is many times slower than float32: auto must avoid it."""
    from emolens.engine.config import resolve_precision

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if native else "32")
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"     # an explicit choice is kept


def test_auto_precision_is_resolved_in_the_run_config(data_csv, tmp_path):
    import yaml

    from emolens.engine.config import resolve_precision

    assert main(["train", "--data", str(data_csv), *TINY, "--epochs", "1", "--batch-size", "64", "--threads", "1",
                 "--set", "limit_train_batches=1", "--out", str(tmp_path), "--name", "auto", "--no-progress"]) == 0
    saved = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert saved["precision"] == resolve_precision("auto", "cpu") != "auto"


def test_last_checkpoint_follows_every_epoch(data_csv, tmp_path):
    """With a frozen model (lr 0) validation never improves; last.ckpt must still be the final epoch."""
    import torch

    assert main(["train", "--data", str(data_csv), *TINY, "--epochs", "3", "--batch-size", "32", "--lr", "0",
                 "--schedule", "none", "--precision", "32", "--out", str(tmp_path), "--name", "flat",
                 "--no-progress", "--threads", "1"]) == 0
    ckpt = torch.load(tmp_path / "flat" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2


def test_distillation_uses_the_teachers_probabilities_as_soft_labels(data_csv, tiny_model, tmp_path, capsys):
    from conftest import make_tiny_model

    from emolens.data import load_dataset
    from emolens.engine.distill import with_teacher_labels
    from emolens.runtime import load_classifier

    train_ds = load_dataset([str(data_csv)]).split("Training")
    taught = with_teacher_labels(train_ds, str(tiny_model))
    expected = load_classifier(str(tiny_model), backend="torch").predict_proba(train_ds.images, tta=True)
    assert taught.soft_labels.shape == (210, 7) and np.allclose(taught.soft_labels, expected, atol=1e-5)
    assert np.array_equal(taught.labels, train_ds.labels)

    base = ["train", "--data", str(data_csv), *TINY, "--epochs", "1", "--batch-size", "32", "--precision", "32",
            "--out", str(tmp_path), "--no-progress", "--threads", "1"]
    assert main([*base, "--name", "kd", "--teacher", str(tiny_model), "--soft-label-weight", "0.7"]) == 0
    assert "agrees with the labels on" in capsys.readouterr().out
    from emolens.engine.card import bundle

    bundle(tmp_path / "kd", tmp_path / "pkg", tmp_path / "docs", "kd", "emolens train ...", "test box")
    card = (tmp_path / "pkg" / "kd.md").read_text()
    assert f"- teacher (knowledge distillation): `{tiny_model}`, its flip probabilities on the training faces, 0.7 of each target" in card
    assert main([*base, "--name", "no_weight", "--teacher", str(tiny_model)]) == 2
    assert "teacher needs soft_label_weight above 0" in capsys.readouterr().err
    other = make_tiny_model(tmp_path / "five.safetensors", classes=("angry", "happy", "sad", "surprise", "contempt"))
    assert main([*base, "--name", "mismatch", "--teacher", str(other), "--soft-label-weight", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "a teacher's classes must be among the data's" in err and len(err.strip().splitlines()) == 1


def test_resume_removes_the_temporary_file_of_an_interrupted_checkpoint_write(tmp_path):
    from emolens.engine.callbacks import AtomicCheckpointIO, remove_partial_writes

    folder = tmp_path / "checkpoints"
    AtomicCheckpointIO().save_checkpoint({"epoch": 3}, folder / "last.ckpt")
    partial = folder / ".last.ckpt.abc123.tmp"
    partial.write_bytes(b"half a checkpoint")
    other = folder / "notes.tmp"
    other.write_text("not ours")
    assert remove_partial_writes(folder) == [partial]
    assert not partial.exists() and other.exists() and (folder / "last.ckpt").exists()
    assert remove_partial_writes(tmp_path / "missing") == []
