"""Adversarial regularisation (NSL style): off by default, a second loss on perturbed inputs when on."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_OPTIONS

from emolens.engine.augment import AugmentConfig
from emolens.engine.config import TrainConfig
from emolens.engine.module import FERModule
from emolens.errors import EmolensError
from emolens.models.registry import create_model

NO_AUG = AugmentConfig(rotation=0, shift=0, zoom=0, hflip=False, crop=48, brightness=0, contrast=0, erase=0)


class Recorder(torch.nn.Module):
    """Wraps a model and keeps every input it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def _module(**cfg) -> FERModule:
    torch.manual_seed(0)
    model = Recorder(create_model("vgg_fer", 7, **TINY_OPTIONS))
    module = FERModule(model, TrainConfig(data=["x"], augment=NO_AUG, label_smoothing=0.0, **cfg))
    module.log = lambda *a, **k: None  # no trainer attached
    return module


def _batch(n=6):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 7
    return images, labels, torch.nn.functional.one_hot(labels, 7).float()


def test_defaults_keep_training_exactly_as_before():
    cfg = TrainConfig()
    assert cfg.adversarial_multiplier == 0.0 and cfg.adversarial_step == 0.01 and cfg.adversarial_norm == "l2"
    assert cfg.pretrained is None and cfg.freeze_epochs == 0 and cfg.backbone_lr_scale == 1.0
    module = _module()
    module.model.eval()  # no dropout / BN batch statistics: the loss is deterministic
    loss = module.training_step(_batch(), 0)
    assert len(module.model.seen) == 1  # one forward pass, no perturbation
    x = module.model.seen[0]
    expected = torch.nn.functional.cross_entropy(module.model.inner(x), _batch()[1])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("norm", ["l2", "inf", "sign"])
def test_adversarial_loss_on_perturbed_neighbours(norm):
    module = _module(adversarial_multiplier=0.3, adversarial_step=0.01, adversarial_norm=norm)
    module.model.eval()
    images, labels, soft = _batch()
    loss = module.training_step((images, labels, soft), 0)
    clean, neighbour = module.model.seen
    delta = (neighbour - clean).flatten(1)
    size = {"l2": delta.norm(dim=1), "inf": delta.abs().amax(dim=1), "sign": delta.abs().amax(dim=1)}[norm]
    torch.testing.assert_close(size, torch.full_like(size, 0.01), rtol=1e-3, atol=1e-6)
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        clean_loss = ce(module.model.inner(clean), labels)
        adv_loss = ce(module.model.inner(neighbour), labels)
    torch.testing.assert_close(loss, clean_loss + 0.3 * adv_loss)
    assert adv_loss > clean_loss  # the step goes uphill on the loss
    loss.backward()  # both terms train the model
    assert all(p.grad is not None for p in module.model.parameters())


def test_bad_adversarial_settings_are_refused():
    with pytest.raises(EmolensError, match="adversarial_norm"):
        TrainConfig(data=["x"], adversarial_norm="l1").validate()
    with pytest.raises(EmolensError, match="must not be negative"):
        TrainConfig(data=["x"], adversarial_multiplier=-1).validate()
    TrainConfig.from_dict({"data": ["x"], "adversarial_multiplier": 0.3, "adversarial_step": 0.01}).validate()


def test_cards_and_averages_name_the_regulariser(tmp_path):
    """A member trained with the regulariser says so where its recipe is written: the card's epochs line
    (engine.card) and the one-line run summary an average's card lists for each checkpoint."""
    import yaml

    from emolens.engine.average import describe_member
    from emolens.engine.card import adversarial_text

    assert adversarial_text({"adversarial_multiplier": 0.0}) == "" and adversarial_text({}) == ""
    nsl = {"adversarial_multiplier": 0.3, "adversarial_step": 0.01, "adversarial_norm": "l2"}
    assert adversarial_text(nsl) == "NSL adversarial regulariser (multiplier 0.3, step 0.01, l2 norm)"
    run = tmp_path / "nsl_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch03.ckpt").write_bytes(b"")
    for cfg, named in [(nsl, True), ({"adversarial_multiplier": 0.0}, False)]:
        (run / "config.yaml").write_text(yaml.safe_dump({"name": "nsl_run", "model": "vgg_fer", "epochs": 4, "seed": 1, **cfg}))
        line = describe_member(str(run / "checkpoints" / "epoch03.ckpt"))
        assert line.startswith("checkpoint epoch03.ckpt of run `nsl_run`: vgg_fer")
        assert ("NSL adversarial regulariser (multiplier 0.3, step 0.01, l2 norm)" in line) == named, line
