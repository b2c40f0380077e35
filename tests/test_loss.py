"""Targets and loss of the training module: label smoothing, FER+ soft labels, class weights."""

import numpy as np
import pytest
import torch

from emolens.engine.config import TrainConfig
from emolens.engine.module import FERModule
from emolens.models.registry import create_model


def _module(**cfg):
    model = create_model("vgg_fer", num_classes=3, widths=[4], convs_per_stage=1, hidden=[], global_pool=True)
    weights = cfg.pop("class_weights", None)
    return FERModule(model, TrainConfig(data=["x"], **cfg), weights)


def test_targets_mix_soft_and_hard_then_smooth():
    m = _module(label_smoothing=0.3, soft_label_weight=0.5)
    labels = torch.tensor([0])
    soft = torch.tensor([[0.2, 0.8, 0.0]])
    t = m._targets(labels, soft, 3)
    mixed = np.array([0.6, 0.4, 0.0])                       # 0.5 * soft + 0.5 * one-hot
    np.testing.assert_allclose(t.numpy()[0], mixed * 0.7 + 0.1, rtol=1e-6)
    assert t.sum().item() == pytest.approx(1.0)


def test_hard_targets_by_default():
    m = _module(label_smoothing=0.0)
    t = m._targets(torch.tensor([2]), torch.tensor([[0.5, 0.5, 0.0]]), 3)
    assert t.tolist() == [[0.0, 0.0, 1.0]]


def test_loss_is_cross_entropy_and_weighted():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    plain = _module()._loss(logits, target)
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).item())
    weighted = _module(class_weights=np.array([1.0, 1.0, 3.0], dtype=np.float32))._loss(logits, target)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]), reduction="none") * torch.tensor([1.0, 3.0])
    assert weighted.item() == pytest.approx(expected.mean().item())
