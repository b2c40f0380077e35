"""The batched augmentation: shapes, identity when switched off, flips, erasing."""

import torch

from emolens.engine.augment import AugmentConfig, augment

OFF = dict(rotation=0, shift=0, zoom=0, hflip=False, crop=48, brightness=0, contrast=0, erase=0)


def test_identity_when_off():
    x = torch.rand(4, 1, 48, 48)
    y = augment(x, AugmentConfig(**OFF))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_flip_gives_mirror_or_original():
    x = torch.rand(64, 1, 48, 48)
    y = augment(x, AugmentConfig(**{**OFF, "hflip": True}), torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(64)]
    same = [torch.allclose(y[i], x[i], atol=1e-5) for i in range(64)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 16 < sum(mirrored) < 48


def test_default_keeps_input_size_and_changes_images():
    x = torch.rand(8, 1, 48, 48)
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert y.shape == (8, 1, 48, 48)
    assert (y - x).abs().mean() > 0.05


def test_erase_zeroes_a_rectangle():
    x = torch.ones(32, 1, 48, 48)
    y = augment(x, AugmentConfig(**{**OFF, "erase": 1.0}), torch.Generator().manual_seed(2))
    zeroed = (y == 0).flatten(1).sum(1)
    assert (zeroed > 0).all() and (zeroed < 48 * 48 * 0.2).all()
