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


def test_default_crops_to_crop_side_and_changes_images():
    x = torch.rand(8, 1, 48, 48)
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert y.shape == (8, 1, 44, 44)
    assert (y - x[..., 2:46, 2:46]).abs().mean() > 0.05


def test_crop_without_warp_is_a_window_of_the_input():
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48).repeat(6, 1, 1, 1)
    y = augment(x, AugmentConfig(**{**OFF, "crop": 40}), torch.Generator().manual_seed(3))
    assert y.shape == (6, 1, 40, 40)
    for img in y[:, 0]:  # a pure translation: steps of 1 along a row and 48 down a column, inside the image
        torch.testing.assert_close(img[:, 1:] - img[:, :-1], torch.ones(40, 39), atol=1e-3, rtol=0)
        torch.testing.assert_close(img[1:] - img[:-1], torch.full((39, 40), 48.0), atol=1e-3, rtol=0)
        assert img.min() >= 0 and img.max() <= 48 * 48 - 1
