"""Channel pruning: a narrower copy of a trained VGG-style network that starts where it left off.

Network slimming (Liu et al. 2017): each convolution's output channels are ranked by the absolute
scale of the batch norm after it, and the widest-scaled ones are kept, stage by stage, together
with the matching input channels of the next layer (the next convolution, or the head's first
linear layer after global pooling). The copy is then fine-tuned (``pretrained: FILE`` in a training
config, usually with the original as ``teacher``); pruning alone loses accuracy.

    python scripts/prune_model.py members/ferplus_v1.safetensors --widths 24 32 64 128 --out ../runs/prune/ferplus-w24.safetensors
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModelError


def _convs_with_norms(features: nn.Sequential) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    layers = list(features)
    pairs = [(m, layers[i + 1]) for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    if not pairs or not all(isinstance(bn, nn.BatchNorm2d) for _, bn in pairs):
        raise ModelError("pruning needs a network whose every convolution is followed by a batch norm")
    return pairs


def kept_channels(bn: nn.BatchNorm2d, keep: int) -> torch.Tensor:
    """Indices (ascending) of the ``keep`` channels of ``bn`` with the largest absolute scale."""
    if not 0 < keep <= bn.num_features:
        raise ModelError(f"cannot keep {keep} of {bn.num_features} channels")
    return torch.sort(torch.topk(bn.weight.detach().abs(), keep).indices).values


def prune_vgg(model: nn.Module, widths: Sequence[int], build) -> nn.Module:
    """A copy of the VGG-style ``model`` (``VGGFace48`` with global pooling) with ``widths``
    channels per stage, built by ``build(widths)`` and filled with the kept channels' weights."""
    from .cnn import VGGFace48

    if not isinstance(model, VGGFace48) or not isinstance(model.head[0], nn.AdaptiveAvgPool2d) \
            or model.head[0].output_size not in (1, (1, 1)):
        raise ModelError("pruning supports the vgg_fer network with global_pool: true")
    source = _convs_with_norms(model.features)
    small = build(list(widths))
    target = _convs_with_norms(small.features)
    if len(source) != len(target):
        raise ModelError(f"widths {list(widths)} give {len(target)} convolutions; the network has {len(source)}")
    kept_in = torch.arange(source[0][0].in_channels)
    with torch.no_grad():
        for (conv, bn), (new_conv, new_bn) in zip(source, target):
            kept = kept_channels(bn, new_conv.out_channels)
            new_conv.weight.copy_(conv.weight[kept][:, kept_in])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_bn, name).copy_(getattr(bn, name)[kept])
            new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
            kept_in = kept
        old_head, new_head = dict(model.head.named_children()), dict(small.head.named_children())
        for key, layer in old_head.items():
            new = new_head[key]
            state = layer.state_dict()
            if isinstance(layer, nn.Linear) and layer.in_features != new.in_features:
                state["weight"] = layer.weight[:, kept_in]
            if state:
                new.load_state_dict(state)
    return small
