"""Config files compose: ``_base_`` names files whose keys this file overrides (mmpretrain style),
instead of being dropped without a word."""

from __future__ import annotations

import pytest

from emolens.engine.config import TrainConfig
from emolens.errors import EmolensError


def test_base_files_are_merged_under_the_file(tmp_path):
    (tmp_path / "base.yaml").write_text("data: [x.csv]\nepochs: 30\nlr: 0.01\naugment: {rotation: 5, shift: 0.1}\n")
    (tmp_path / "mid.yaml").write_text("_base_: base.yaml\nepochs: 40\n")
    (tmp_path / "run.yaml").write_text("_base_: [mid.yaml]\nlr: 0.002\naugment: {rotation: 15}\n")
    cfg = TrainConfig.load(tmp_path / "run.yaml")
    assert (cfg.data, cfg.epochs, cfg.lr) == (["x.csv"], 40, 0.002)
    assert (cfg.augment.rotation, cfg.augment.shift) == (15, 0.1)     # augment merged key by key


def test_a_missing_or_circular_base_is_one_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: gone.yaml\n")
    with pytest.raises(EmolensError, match="_base_ file gone.yaml not found"):
        TrainConfig.load(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("_base_: c.yaml\n")
    (tmp_path / "c.yaml").write_text("_base_: b.yaml\n")
    with pytest.raises(EmolensError, match="includes itself"):
        TrainConfig.load(tmp_path / "b.yaml")
