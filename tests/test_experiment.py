"""`emolens experiment`: a grid of runs, a shortened schedule, an ensemble row, one markdown table."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import synthetic_faces, write_fer_csv

from emolens.cli import main
from emolens.errors import EmolensError
from emolens.experiments.runs import _stratified
from emolens.experiments.schema import load_experiment

TINY = {"widths": [4, 8], "convs_per_stage": 1, "hidden": [8], "global_pool": True}
NO_WARP = {"rotation": 0, "shift": 0, "zoom": 0, "crop": 48, "erase": 0}


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    images, labels = synthetic_faces(385, seed=3)   # a full Kaggle file: all three splits
    usages = ["Training"] * 280 + ["PublicTest"] * 70 + ["PrivateTest"] * 35
    return write_fer_csv(tmp_path_factory.mktemp("data") / "fer2013.csv", images, labels, usages)


def _experiment(tmp_path, data_csv, **extra) -> str:
    cfg = {
        "name": "tiny", "title": "Tiny balancing table", "description": "Synthetic faces.",
        "out": str(tmp_path / "runs"), "table": str(tmp_path / "docs" / "tiny.md"),
        "set": {"data": str(data_csv), "model": "vgg_fer", "model_options": TINY, "epochs": 3, "batch_size": 16,
                "lr": 0.01, "optimizer": "sgd", "schedule": "cosine", "precision": "32", "augment": NO_WARP,
                "keep_epochs": 1},
        "grid": {"balance": ["none", "oversample"]},
        "runs": [
            {"label": "adv", "balance": "class_weights", "adversarial_multiplier": 0.3, "adversarial_step": 0.01},
            {"label": "vote", "kind": "ensemble", "members": ["none", "adv"]},
            {"label": "soup", "kind": "average", "members": ["none", "oversample"]},
            {"label": "soup_last", "kind": "average", "members": ["none", "oversample"], "last_epochs": 1},
        ],
        "schedule": {"epochs": 1, "limit_train_batches": 5, "max_train_rows": 140, "max_val_rows": 42},
        **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_experiment_runs_grid_ensemble_and_writes_table(tmp_path, data_csv, capsys, monkeypatch):
    from emolens.data.dataset import FaceDataset

    resolved = []   # every split any row kind reads: PrivateTest must never be among them
    original = FaceDataset.resolve_split

    def spy(self, name, role="train"):
        resolved.append(original(self, name, role))
        return resolved[-1]

    monkeypatch.setattr(FaceDataset, "resolve_split", spy)
    path = _experiment(tmp_path, data_csv)
    assert main(["experiment", path, "--threads", "1"]) == 0
    assert "PublicTest" in resolved and "PrivateTest" not in resolved
    table = (tmp_path / "docs" / "tiny.md").read_text()
    assert table.startswith("# Tiny balancing table")
    assert "| model | method | data | accuracy on PublicTest (validation) | macro-F1 | time |" in table
    assert "**Shortened schedule**" in table and "1 epoch(s) per run" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 6
    assert "random over-sampling" in rows[1] and "class weights, adversarial reg. x0.3, step 0.01" in rows[2]
    assert rows[3].startswith("| ensemble of none, adv | soft vote")
    assert rows[4].startswith("| weight average of none, oversample | mean of the weights of the members,")
    assert "| mean of the weights of the last 1 epochs' checkpoints of each member," in rows[5]
    assert "140 of 280 Training rows, 42 of 70 PublicTest rows (stratified)" in rows[0]
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["ok"] * 6
    for r in results["runs"]:  # every row kind (train, ensemble, average) scored on the same validation rows
        assert 0 <= r["accuracy"] <= 1 and r["n_val"] == 42 and r["split"] == "PublicTest"
    for label in ("none", "oversample", "adv"):  # each run keeps its own full report
        for name in ("report.txt", "metrics.json", "confusion_matrix.png", f"model/{label}.safetensors"):
            assert (tmp_path / "runs" / label / name).exists(), (label, name)
    adv_log = (tmp_path / "runs" / "adv" / "logs" / "metrics.csv").read_text()
    assert "train_adv_loss" in adv_log
    spec = yaml.safe_load((tmp_path / "runs" / "vote" / "vote.ensemble.yaml").read_text())
    assert [m["model"] for m in spec["members"]] == ["../none/model/none.safetensors", "../adv/model/adv.safetensors"]
    assert sum(m["weight"] for m in spec["members"]) == pytest.approx(1.0, abs=1e-4)
    _check_soup(tmp_path / "runs", results["runs"][4])
    # the same members' last (here: only) epoch checkpoints: the same networks, so the same numbers
    last = yaml.safe_load((tmp_path / "runs" / "soup_last" / "soup_last.average.yaml").read_text())
    assert [m["model"] for m in last["members"]] == [str(tmp_path / "runs" / x / "checkpoints" / "epoch00.ckpt")
                                                     for x in ("none", "oversample")]
    assert results["runs"][5]["accuracy"] == pytest.approx(results["runs"][4]["accuracy"])

    # a second invocation finds the finished runs and only rewrites the table
    capsys.readouterr()
    assert main(["experiment", path, "--only", "none"]) == 0
    assert "already done" in capsys.readouterr().out


def _check_soup(runs, row):
    """The average row: one network, its record naming the members, its numbers those of its weights."""
    import numpy as np

    from emolens.data import load_dataset
    from emolens.engine.average import read_record
    from emolens.runtime.classifier import ModuleClassifier
    from emolens.models.weights import load_model

    weights = runs / "soup" / "soup.safetensors"
    assert row["weights"] == str(weights)
    record = read_record(weights)
    assert [m["model"] for m in record["members"]] == [str(runs / x / "model" / f"{x}.safetensors")
                                                       for x in ("none", "oversample")]
    assert record["batchnorm"]["split"] == "Training" and record["batchnorm"]["faces"] == 140
    model, spec = load_model(weights)
    val = load_dataset(record["batchnorm"]["data"]).split("PublicTest")  # the shortened schedule's subset
    predicted = ModuleClassifier(model, spec, raw=True).predict_proba(val.images, tta="none").argmax(1)
    metrics = json.loads((runs / "soup" / "metrics.json").read_text())
    assert metrics["n"] == len(val) == 42
    assert metrics["accuracy"] == pytest.approx(row["accuracy"]) == pytest.approx(np.mean(predicted == val.labels))


def test_dry_run_and_bad_configs(tmp_path, data_csv, capsys):
    path = _experiment(tmp_path, data_csv)
    assert main(["experiment", path, "--dry-run", "--epochs", "7"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in out["runs"]] == ["none", "oversample", "adv", "vote", "soup", "soup_last"]
    assert out["schedule"].startswith("7 epoch(s) per run")
    with pytest.raises(EmolensError, match="unknown config key"):
        load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "x", "epochz": 3}]))
    with pytest.raises(EmolensError, match="needs at least two members"):
        load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "v", "kind": "ensemble", "members": ["none"]}]))
    with pytest.raises(EmolensError, match="average s needs at least two members among the runs listed before it; "
                                           "not found: later"):
        load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "s", "kind": "average",
                                                               "members": ["none", "later"]}, {"label": "later"}]))
    for bad, message in [({"last_epochs": "four"}, "last_epochs must be a whole number of epochs"),
                         ({"weights": [1]}, "average s has 1 weights for 2 members")]:
        with pytest.raises(EmolensError, match=message):
            load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "s", "kind": "average",
                                                                   "members": ["none", "oversample"], **bad}]))
    with pytest.raises(EmolensError, match="run t: last_epochs belongs to kind: average rows"):
        load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "t", "last_epochs": 2}]))
    with pytest.raises(EmolensError, match="unique"):
        load_experiment(_experiment(tmp_path, data_csv, runs=[{"label": "none"}]))


def test_an_average_of_more_epochs_than_a_run_kept_is_refused(tmp_path):
    from emolens.experiments.runs import _average_inputs
    from emolens.experiments.schema import RunResult, RunSpec

    run = tmp_path / "a"
    (run / "checkpoints").mkdir(parents=True)
    for n in (99, 100, 101):
        (run / "checkpoints" / f"epoch{n:02d}.ckpt").write_bytes(b"")
    member = RunResult("a", "vgg_fer", "", "", run_dir=str(run))
    spec = RunSpec("s", kind="average", members=["a", "a"], last_epochs=2, weights=[3, 1])
    paths, weights = _average_inputs(spec, [member, member])
    assert [p.rsplit("/", 1)[1] for p in paths] == ["epoch100.ckpt", "epoch101.ckpt"] * 2  # by number, not by name
    assert weights == [3, 3, 1, 1]
    spec.last_epochs = 4
    with pytest.raises(EmolensError, match=r"run a kept 3 epoch checkpoint\(s\) .*fewer than last_epochs=4; "
                                           "train it with keep_epochs: 4"):
        _average_inputs(spec, [member, member])


def test_stratified_subset_keeps_proportions_and_rare_classes():
    import numpy as np

    labels = np.array([0] * 900 + [1] * 95 + [2] * 5)
    idx = _stratified(labels, 100, seed=0)
    counts = np.bincount(labels[idx], minlength=3)
    assert counts[0] == 90 and counts[1] == 9 and counts[2] == 2  # the rare class keeps two rows (SMOTE)
    assert len(set(idx.tolist())) == len(idx)


def test_seed_table_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "experiments"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        exp = load_experiment(f)
        assert exp.runs and str(exp.table).startswith("docs/experiments/")
