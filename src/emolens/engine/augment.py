"""Batched augmentation on tensors: one affine warp per image, all images at once.

Rotation, shift, zoom and horizontal flip are folded into one affine matrix per image and
applied with ``grid_sample``; the output is a random crop of side ``crop`` (the model's input
side: at test time the face gets the matching centre crop, see ``Preprocess.crop``).
Brightness/contrast jitter and random erasing follow. Working on the whole batch keeps
the CPU busy with a few large ops instead of thousands of small per-image ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig  # noqa: F401  (defined beside the train config, importable without torch)


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a normalised batch ``x`` of shape (N, C, H, W); returns (N, C, crop, crop)."""
    n, c, h, w = x.shape
    dev, dt = x.device, x.dtype

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, device=dev, generator=generator, dtype=dt) * (hi - lo) + lo

    angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
    scale = uniform(1 - cfg.zoom, 1 + cfg.zoom)
    flip = torch.where(torch.rand(n, device=dev, generator=generator) < 0.5, -1.0, 1.0).to(dt) if cfg.hflip \
        else torch.ones(n, device=dev, dtype=dt)
    out = min(cfg.crop, h)
    # grid_sample maps output coordinates to input coordinates, so the matrix is the inverse warp:
    # a crop of side `out` is a window of out/h of the input, placed anywhere the shift allows.
    span = out / h
    room = (1 - span) + cfg.shift * 2
    tx, ty = uniform(-room / 2, room / 2), uniform(-room / 2, room / 2)
    cos, sin = torch.cos(angle) * span / scale, torch.sin(angle) * span / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, c, out, out), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.contrast or cfg.brightness:
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * uniform(1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1) + mean
        y = y + uniform(-cfg.brightness, cfg.brightness).view(n, 1, 1, 1)
    if cfg.erase > 0:
        y = _random_erase(y, cfg.erase, generator)
    return y


def _random_erase(y: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = y.shape
    dev = y.device
    eh = (torch.rand(n, device=dev, generator=generator) * 0.3 + 0.1) * h
    ew = (torch.rand(n, device=dev, generator=generator) * 0.3 + 0.1) * w
    cy = torch.rand(n, device=dev, generator=generator) * h
    cx = torch.rand(n, device=dev, generator=generator) * w
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = ((rows - cy.view(n, 1, 1)).abs() < eh.view(n, 1, 1) / 2) & ((cols - cx.view(n, 1, 1)).abs() < ew.view(n, 1, 1) / 2)
    active = (torch.rand(n, device=dev, generator=generator) < p).view(n, 1, 1)
    return y.masked_fill((box & active).unsqueeze(1), 0.0)
