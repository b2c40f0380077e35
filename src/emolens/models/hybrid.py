"""The Swin + SE + ResNet hybrid of the seed slides.

Two branches see the same face:

* a Swin transformer (timm) whose last feature map goes through a squeeze-and-excitation gate,
  a *split convolution* and mean pooling. Our reading of "split convolution": the channels are
  split into groups and each group gets its own kernel size (1, 3, 5, 7 by default), so the
  branch mixes local context at several scales before pooling;
* a ResNet-50 (timm) with global average pooling.

The two pooled vectors are concatenated into an MLP classifier. The face (48x48 grey) is resized
to the Swin ``img_size`` for the Swin branch and to ``resnet_resize`` (default: unchanged) for
the ResNet branch.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import _as_size, _drop_unused, pretrained_timm_state, require_timm, to_nchw
from .cnn import FaceClassifier, SqueezeExcite
from .registry import register_model


class SplitConv(nn.Module):
    """Channels split into groups, one convolution (own kernel size) per group, concatenated."""

    def __init__(self, channels: int, out_channels: int, kernels: Sequence[int] = (1, 3, 5, 7)):
        super().__init__()
        k = len(kernels)
        ins = [channels // k + (1 if i < channels % k else 0) for i in range(k)]
        outs = [out_channels // k + (1 if i < out_channels % k else 0) for i in range(k)]
        self.splits = ins
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv2d(ci, co, ks, padding=ks // 2, bias=False),
                                                 nn.BatchNorm2d(co), nn.ReLU(inplace=True))
                                   for ci, co, ks in zip(ins, outs, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)


class SwinSEResNet(FaceClassifier):
    """Swin branch (SE, split convolution, mean pooling) + ResNet-50 branch (global pooling)."""

    def __init__(self, num_classes: int = 7, swin: str = "swin_tiny_patch4_window7_224", resnet: str = "resnet50",
                 img_size: int = 224, window_size: int = 7, resnet_resize: int | None = None, se_reduction: int = 16,
                 split_channels: int = 512, split_kernels: Sequence[int] = (1, 3, 5, 7),
                 hidden: Sequence[int] = (512,), dropout: float = 0.5, in_chans: int = 1,
                 swin_kwargs: dict | None = None, resnet_kwargs: dict | None = None):
        super().__init__()
        timm = require_timm()
        self.swin_name, self.resnet_name, self.in_chans = swin, resnet, in_chans
        self.swin_kwargs = {"img_size": img_size, "window_size": window_size, **(swin_kwargs or {})}
        self.resnet_kwargs = dict(resnet_kwargs or {})
        self.swin = _drop_unused(timm.create_model(swin, pretrained=False, num_classes=0, in_chans=in_chans,
                                                   **self.swin_kwargs))
        self.resnet = _drop_unused(timm.create_model(resnet, pretrained=False, num_classes=0, in_chans=in_chans,
                                                     **self.resnet_kwargs))
        self.swin_size = _as_size(self.swin_kwargs["img_size"])
        self.resnet_size = _as_size(resnet_resize)
        self.swin_nhwc = getattr(self.swin, "output_fmt", "NCHW") == "NHWC"
        c_swin, c_res = int(self.swin.num_features), int(self.resnet.num_features)
        self.se = SqueezeExcite(c_swin, se_reduction)
        self.split_conv = SplitConv(c_swin, split_channels, split_kernels)
        layers: list[nn.Module] = []
        width = split_channels + c_res
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.head = nn.Sequential(*layers)
        self.frozen = False

    @staticmethod
    def _resized(x: torch.Tensor, size) -> torch.Tensor:
        if size is None or tuple(x.shape[-2:]) == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated pooled features of both branches, (N, split_channels + resnet features)."""
        s = to_nchw(self.swin.forward_features(self._resized(x, self.swin_size)), self.swin_nhwc)
        s = self.split_conv(self.se(s)).mean(dim=(2, 3))
        r = self.resnet.forward_features(self._resized(x, self.resnet_size)).mean(dim=(2, 3))
        return torch.cat([s, r], dim=1)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.swin, self.resnet]

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen:
            self.swin.eval()
            self.resnet.eval()
        return self

    def load_pretrained(self, source) -> None:
        """``source``: one source for both branches (``hub``, a URL) or ``{"swin": ..., "resnet": ...}``."""
        sources = source if isinstance(source, dict) else {"swin": source, "resnet": source}
        if sources.get("swin"):
            self.swin.load_state_dict(pretrained_timm_state(self.swin_name, sources["swin"], self.in_chans,
                                                            self.swin_kwargs))
        if sources.get("resnet"):
            self.resnet.load_state_dict(pretrained_timm_state(self.resnet_name, sources["resnet"], self.in_chans,
                                                              self.resnet_kwargs))


@register_model("swin_se_resnet", needs=("timm",),
                source="seed project slides: Swin branch with SE, split convolution and mean pooling + "
                       "ResNet-50 branch with global pooling, concatenated")
def swin_se_resnet(num_classes: int, **options) -> nn.Module:
    """Hybrid of a Swin-T branch (SE, split convolution, mean pooling) and a ResNet-50 branch."""
    return SwinSEResNet(num_classes, **options)
