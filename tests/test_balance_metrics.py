"""Balancing methods and the metrics/report outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolens.data.balance import balance
from emolens.data.dataset import FaceDataset
from emolens.errors import DataError
from emolens.evaluation.metrics import compute_metrics


def _imbalanced(counts=(40, 10, 5), seed=0) -> FaceDataset:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
    images = np.clip(rng.normal(2 * labels[:, None, None] + 100, 40, (len(labels), 48, 48)), 0, 255).astype(np.uint8)
    return FaceDataset(images, labels, np.full(len(labels), "Training"), ("angry", "happy", "sad"), "synthetic")


@pytest.mark.parametrize("method", ["oversample", "smote", "adasyn"])
def test_over_sampling_methods_balance_counts(method):
    ds = _imbalanced()
    res = balance(ds, method, seed=1)
    assert res.counts_before == {"angry": 40, "happy": 10, "sad": 5}
    after = res.counts_after
    assert after["angry"] == 40
    if method == "adasyn":  # ADASYN adapts the number per class: close to, not exactly, balanced
        assert all(abs(after[c] - 40) <= 8 for c in after)
    else:
        assert after == {"angry": 40, "happy": 40, "sad": 40}
    assert res.dataset.images.dtype == np.uint8 and len(res.dataset) == sum(after.values())
    assert "sad" in res.describe() and "->" in res.describe()
    again = balance(ds, method, seed=1)
    np.testing.assert_array_equal(again.dataset.images, res.dataset.images)   # seeded


def test_oversample_keeps_original_rows():
    ds = _imbalanced()
    out = balance(ds, "oversample").dataset
    for c in range(3):   # every over-sampled row is a copy of an original row of the same class
        originals = {ds.images[i].tobytes() for i in np.flatnonzero(ds.labels == c)}
        assert {out.images[i].tobytes() for i in np.flatnonzero(out.labels == c)} == originals


def test_class_weights_inverse_frequency():
    res = balance(_imbalanced(), "class_weights")
    np.testing.assert_allclose(res.class_weights, [55 / (3 * 40), 55 / (3 * 10), 55 / (3 * 5)], rtol=1e-6)
    assert res.counts_after == res.counts_before


def test_balance_errors():
    with pytest.raises(DataError, match="unknown balancing method 'magic'"):
        balance(_imbalanced(), "magic")
    with pytest.raises(DataError, match="a class has only 1 row"):
        balance(_imbalanced((20, 5, 1)), "smote")


def test_adasyn_failure_is_a_clear_error():
    # Two far-apart, well-separated classes: no minority row has a majority neighbour -> ADASYN has nothing to do.
    labels = np.array([0] * 30 + [1] * 6)
    images = np.concatenate([np.zeros((30, 48, 48)), np.full((6, 48, 48), 255)]).astype(np.uint8)
    images[:30, 0, :6] = np.arange(30)[:, None]
    images[30:, 0, :6] = 250 - np.arange(6)[:, None]
    ds = FaceDataset(images, labels, np.full(36, "train"), ("angry", "happy"), "separated")
    with pytest.raises(DataError, match="adasyn failed on separated"):
        balance(ds, "adasyn")


def test_metrics_values_and_outputs(tmp_path):
    classes = ["angry", "happy", "sad"]
    y_true = [0, 0, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 1, 2, 2, 0]
    m = compute_metrics(y_true, y_pred, classes)
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.confusion_matrix == [[1, 1, 0], [0, 3, 0], [1, 0, 2]]
    assert m.per_class["happy"]["precision"] == pytest.approx(3 / 4)
    assert m.per_class["sad"]["recall"] == pytest.approx(2 / 3)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * 0.75 * 1 / 1.75, 2 * 1 * (2 / 3) / (5 / 3)]
    assert m.macro_f1 == pytest.approx(np.mean(f1))
    assert m.weighted_f1 == pytest.approx(np.average(f1, weights=[2, 3, 3]))
    m.write_json(tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix", "n"} <= set(data)
    assert data["n"] == 8
    m.plot_confusion(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_allclose(m.normalised_confusion().sum(1), 1.0)
    assert "happy" in m.report and "macro avg" in m.report
