"""Every model is registered by name and built with :func:`create_model` (the timm pattern)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..errors import ModelError

if TYPE_CHECKING:  # registering and listing names needs no torch; building a model does
    from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What a registered architecture needs and where it comes from."""

    name: str
    builder: Callable[..., nn.Module]
    source: str = ""
    description: str = ""
    needs: tuple[str, ...] = field(default_factory=tuple)  # optional packages it imports
    sized: bool = False  # takes an ``input_size`` option (the side it is trained at)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, source: str = "",
                   description: str = "", needs: tuple[str, ...] = (), sized: bool = False):
    """Decorator: ``@register_model("name", source=...)`` on a builder ``f(num_classes, **options)``."""

    def wrap(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, source,
                                    description or (builder.__doc__ or "").strip().split("\n")[0], needs, sized)
        return builder

    return wrap


def list_models() -> list[ModelInfo]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def model_info(name: str) -> ModelInfo:
    _load_builtin()
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build a registered architecture with fresh weights."""
    info = model_info(name)
    try:
        return info.builder(num_classes=num_classes, **options)
    except TypeError as e:
        raise ModelError(f"model {name!r}: bad options {options}: {e}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_multiply_adds(model: nn.Module, side: int, channels: int = 1) -> int:
    """Multiply-adds of the convolutions and linear layers for one ``side`` x ``side`` face."""
    import torch
    from torch import nn

    total = 0

    def count(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * module.in_channels // module.groups * k
        else:
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, side, side))
    finally:
        for h in hooks:
            h.remove()
    return total


def _load_builtin() -> None:
    from . import cnn  # noqa: F401  (registers the built-in architectures)
    from . import backbones, ensemble, hybrid  # noqa: F401  (the zoo: timm backbones, hybrid, ensembles)
