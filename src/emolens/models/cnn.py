"""Architectures for 48x48 grey faces, trained from scratch.

All share the timm-style interface: ``forward_features`` (feature map), ``forward_head``
(logits from features) and ``reset_classifier(num_classes)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import register_model


class FaceClassifier(nn.Module):
    """The interface every emolens network shares (timm's): subclasses set ``features`` (or override
    ``forward_features``) and ``head``, an ``nn.Sequential`` ending in the class ``nn.Linear``."""

    features: nn.Module
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        last = self.head[-1]
        self.head[-1] = nn.Linear(last.in_features, num_classes)


def _conv_bn(cin: int, cout: int, act: type[nn.Module]) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act()]


def _mlp_head(cin: int, hidden: Sequence[int], num_classes: int, dropout: float, act: type[nn.Module],
              grid: int = 1) -> nn.Sequential:
    """Pool the feature map to ``grid`` x ``grid`` (1 = global average pooling), flatten, then an MLP.

    A flatten-style head sizes its grid from the ``input_size`` option (the side the network is
    trained at: 48, or the crop side); the training engine sets it.
    """
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(grid), nn.Flatten()]
    cin = cin * grid * grid
    for width in hidden:
        layers += [nn.Dropout(dropout), nn.Linear(cin, width, bias=False), nn.BatchNorm1d(width), act()]
        cin = width
    layers += [nn.Dropout(dropout), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def _he_init(model: nn.Module, nonlinearity: str) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)  # Keras "he_normal"
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CompactCNN(FaceClassifier):
    """VGG-like blocks of two 3x3 convs with batch norm and ELU, max pooling and dropout."""

    def __init__(self, num_classes: int = 7, widths: Sequence[int] = (64, 128, 256), hidden: int = 128,
                 block_dropout: Sequence[float] = (0.4, 0.4, 0.5), dropout: float = 0.6, in_chans: int = 1,
                 input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for width, p in zip(widths, block_dropout):
            layers += _conv_bn(cin, width, nn.ELU) + _conv_bn(width, width, nn.ELU)
            layers += [nn.MaxPool2d(2), nn.Dropout(p)]
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = _mlp_head(cin, [hidden], num_classes, dropout, nn.ELU, grid=input_size // 2 ** len(widths))
        _he_init(self, "relu")


class SqueezeExcite(nn.Module):
    """Channel attention of Hu et al. (2018): global pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SEBasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a squeeze-and-excitation gate before the sum."""

    def __init__(self, cin: int, cout: int, stride: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), SqueezeExcite(cout, reduction),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class SEResNet(FaceClassifier):
    """ResNet with squeeze-and-excitation blocks, stem and strides sized for 48x48 faces."""

    def __init__(self, num_classes: int = 7, widths: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (2, 2, 2, 2), stem: int = 32, reduction: int = 8,
                 dropout: float = 0.3, in_chans: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_chans, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(inplace=True)]
        cin = stem
        for i, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(SEBasicBlock(cin, width, 2 if j == 0 and i > 0 else 1, reduction))
                cin = width
        self.features = nn.Sequential(*layers)
        self.head = _mlp_head(cin, [], num_classes, dropout, nn.ReLU)
        _he_init(self, "relu")


class VGGFace48(FaceClassifier):
    """VGG-style stages of two 3x3 conv + BN + ReLU with max pooling, then a dropout MLP head."""

    def __init__(self, num_classes: int = 7, widths: Sequence[int] = (64, 128, 256, 512),
                 convs_per_stage: int | Sequence[int] = 2, hidden: Sequence[int] = (4096, 4096), dropout: float = 0.5,
                 global_pool: bool = False, in_chans: int = 1, input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        if isinstance(convs_per_stage, int):
            convs_per_stage = [convs_per_stage] * len(widths)
        for width, n_convs in zip(widths, convs_per_stage):
            for _ in range(n_convs):
                layers += _conv_bn(cin, width, lambda: nn.ReLU(inplace=True))
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        grid = 1 if global_pool else input_size // 2 ** len(widths)
        self.head = _mlp_head(cin, list(hidden), num_classes, dropout, lambda: nn.ReLU(inplace=True), grid=grid)
        _he_init(self, "relu")


@register_model("compact_cnn", sized=True, source="seed project slides: Keras CNN (Conv-BN-ELU x2, max-pool, dropout; "
                "he_normal init), the common FER-2013 Kaggle baseline")
def compact_cnn(num_classes: int, **options) -> nn.Module:
    """Compact VGG-like CNN of the seed slides: ELU, batch norm, he_normal init, dropout."""
    return CompactCNN(num_classes, **options)


@register_model("se_resnet", source="He et al. 2016 (ResNet) + Hu et al. 2018 (squeeze-and-excitation), "
                "stem without down-sampling for 48x48 input")
def se_resnet(num_classes: int, **options) -> nn.Module:
    """ResNet-18-shaped network with squeeze-and-excitation blocks for 48x48 grey faces."""
    return SEResNet(num_classes, **options)


@register_model("vgg_fer", sized=True, source="Khaireddin & Chen 2021, 'Facial Emotion Recognition: State of the Art "
                "Performance on FER2013' (VGG variant, 73.28% on FER-2013 PrivateTest)")
def vgg_fer(num_classes: int, **options) -> nn.Module:
    """VGG-style network of the kind that reaches about 73% on FER-2013 from scratch."""
    return VGGFace48(num_classes, **options)
