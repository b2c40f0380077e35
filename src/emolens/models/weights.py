"""Trained models on disk: ``NAME.safetensors`` (tensors only, no pickle) + ``NAME.json`` (the spec).

The spec names the architecture and its options, the class names, the preprocessing the
model was trained with (so it cannot drift) and the sha256 of the weights file, checked on
every load. A bundled model's hashes are also pinned in the package's code
(:data:`emolens.weights.pins.BUNDLED_SHA256`), so editing its files and its spec together is
caught too. A spec without a sha256 loads only when the caller says ``trust_unhashed``.

Reading specs and checking hashes needs no torch (the light install runs the bundled ONNX
files); building a network does.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MissingExtra, ModelError, needs_extra
from ..files import atomic_write_bytes, sha256_of
from .registry import create_model

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Preprocess:
    """How a face crop becomes the model's input.

    The aligned face is ``input_size`` square, grey (channels=1) or RGB; ``crop`` (when set) is
    the centre crop the model sees, matching the random crops it was trained on; then
    ``(x / 255 - mean) / std``.
    """

    input_size: int = 48
    channels: int = 1
    mean: float = 0.5
    std: float = 0.25
    crop: int = 0

    @property
    def model_size(self) -> int:
        """Side of the tensor the network takes."""
        return self.crop if 0 < self.crop < self.input_size else self.input_size

    def normalise(self, faces, at: tuple[int, int] | None = None, crop: bool = True):
        """uint8 faces (N, H, W) at ``input_size`` -> float32 (N, C, S, S), S = :attr:`model_size`;
        the crop is centred unless ``at`` gives its (top, left) corner; ``crop=False`` keeps the
        whole face (training, whose augmentation cuts random crops).

        The one normalisation of emolens: inference (numpy arrays) and training (torch tensors,
        on any device) both call it, so the two cannot drift apart."""
        side = self.model_size
        if crop and side != faces.shape[-1]:
            top, left = at or ((faces.shape[-2] - side) // 2, (faces.shape[-1] - side) // 2)
            faces = faces[:, top:top + side, left:left + side]
        x = faces.astype(np.float32) if isinstance(faces, np.ndarray) else faces.float()
        x = ((x / 255.0 - self.mean) / self.std)[:, None]
        if self.channels == 1:
            return x
        return np.repeat(x, self.channels, axis=1) if isinstance(x, np.ndarray) else x.expand(-1, self.channels, -1, -1)

    def views(self, faces: np.ndarray, tta: bool | str | None = None) -> list[np.ndarray]:
        """The normalised inputs whose probabilities test-time augmentation averages: the centre
        crop alone (``none``); with its mirror image (``flip``); or the centre and the four corner
        crops, each with its mirror image (``ten_crop``, for models trained on random crops)."""
        mode = tta_mode(tta)
        if mode == "ten_crop":
            margin = self.input_size - self.model_size
            if margin <= 0:
                raise ModelError("ten-crop TTA needs a model that sees crops of its input face (preprocess.crop); "
                                 "this one sees the whole face: use flip")
            corners = [(margin // 2, margin // 2), (0, 0), (0, margin), (margin, 0), (margin, margin)]
        else:
            corners = [None]
        out = []
        for at in corners:
            x = self.normalise(faces, at)
            out += [x] if mode == "none" else [x, np.ascontiguousarray(x[..., ::-1])]
        return out


TTA_MODES = ("none", "flip", "ten_crop")


def tta_mode(value: bool | str | None) -> str:
    """``none``, ``flip`` or ``ten_crop`` from a mode name or a flag (False/None: none, True: flip)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "flip"
    mode = str(value).strip().lower().replace("-", "_")
    if mode not in TTA_MODES:
        raise ModelError(f"unknown test-time augmentation {value!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


@dataclass
class ModelSpec:
    name: str
    arch: str
    classes: list[str]
    preprocess: Preprocess = field(default_factory=Preprocess)
    options: dict = field(default_factory=dict)
    version: str = "0"
    sha256: str = ""
    metrics: dict = field(default_factory=dict)
    # the calibration and operating point the runtime applies (emolens.evaluation.calibration.Calibration)
    calibration: dict = field(default_factory=dict)
    tta: bool | str = False  # evaluate's default test-time augmentation (none, flip, ten_crop; True: flip)
    # the network exported to ONNX beside the weights: {"file": NAME.onnx, "sha256": ..., "opset": N};
    # raw logits (no calibration, no TTA: the runtime applies both in numpy); empty: none shipped
    onnx: dict = field(default_factory=dict)
    # the INT8 copy of that network (emolens.runtime.quantize): {"file": NAME.int8.onnx, "sha256": ...,
    # "source_sha256": the float file's sha256, "method": ..., "parity": {split, n, agreement,
    # accuracy_float, accuracy_int8}}; empty: none shipped
    int8: dict = field(default_factory=dict)

    def reported_metrics(self, raw: bool = False) -> dict:
        """The validation metrics of the probabilities users get: with the stored calibration and
        operating point (as shipped, ``calibrated: True``) unless ``raw`` or the calibration holds
        none; else the network's own (``calibrated: False``). ``accuracy``/``macro_f1`` are one
        pass (the Recognizer's default), ``flip_*`` with flip TTA; ``split`` names the split."""
        shipped = (self.calibration or {}).get("metrics") or {}
        if shipped and not raw:
            from .calibration import Calibration

            return {**shipped, "calibrated": True, "steps": Calibration.from_dict(self.calibration).steps()}
        return {**self.metrics, "calibrated": False} if self.metrics else {}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["preprocess"] = Preprocess(**d.get("preprocess", {}))
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def save_model(model: nn.Module, spec: ModelSpec, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its spec beside it (.json); returns the weights path."""
    from safetensors.torch import save

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata={"arch": spec.arch, "name": spec.name}))
    spec.sha256 = sha256_of(path)
    write_spec(spec, path)
    return path


def write_spec(spec: ModelSpec, weights: str | Path) -> Path:
    """Write ``spec`` as the JSON beside ``weights`` (atomically); returns its path."""
    path = Path(weights).with_suffix(".json")
    atomic_write_bytes(path, (json.dumps(spec.to_dict(), indent=2) + "\n").encode())
    return path


def read_spec(path: str | Path) -> ModelSpec:
    path = Path(path).with_suffix(".json")
    if not path.exists():
        raise ModelError(f"{path}: no model spec beside the weights (expected {path.name})")
    try:
        return ModelSpec.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ModelError(f"{path}: not a valid model spec ({e})") from None


def check_pin(path: Path, expected: str, kind: str) -> bool:
    """True when ``path`` is a bundled model's file; then ``expected`` (the hash its spec gives) must be
    the one emolens pins for that file ``kind`` (``safetensors``, ``onnx`` or ``int8``), else this is an error."""
    from ..weights.pins import pinned_hashes

    pins = pinned_hashes(path)
    if pins is None:
        return False
    pin = pins.get(kind, "")
    if expected != pin:
        raise ModelError(f"{path}: the spec of this bundled model gives sha256 {expected[:12] or 'none'}..., but "
                         f"emolens pins {pin[:12] or 'none'}...: the bundled files were edited or replaced "
                         "(reinstall emolens)")
    return True


def check_file(path: Path, expected: str, kind: str, trust_unhashed: bool = False) -> None:
    """Check ``path`` against the sha256 its spec gives (``expected``) before it is loaded.

    A bundled model's spec must give the pinned hash (:func:`check_pin`) and its file must have it.
    Any other model whose spec gives no hash loads only with ``trust_unhashed`` (and says what is
    skipped); otherwise this is an error naming the option."""
    bundled = check_pin(path, expected, kind)
    if not expected and not bundled:
        if not trust_unhashed:
            raise ModelError(f"{path}: its spec ({path.with_suffix('.json').name}) gives no sha256, so the file cannot be "
                             "checked; pass --trust-unhashed (Python: trust_unhashed=True) to load it anyway")
        print(f"emolens: warning: {path}: no sha256 in its spec; loading it unchecked (--trust-unhashed skips the "
              "integrity check)", file=sys.stderr)
        return
    actual = sha256_of(path)
    if actual != expected:
        which = "pinned by emolens" if bundled else "in the spec"
        raise ModelError(f"{path}: checksum mismatch (sha256 {actual[:12]}..., {which} {expected[:12]}...); "
                         "the file is damaged or was replaced")


def load_model(path: str | Path, trust_unhashed: bool = False) -> tuple[nn.Module, ModelSpec]:
    """Build the architecture named in the spec and load the checked weights, in eval mode.

    ``trust_unhashed``: load weights whose spec has no sha256 (see :func:`check_file`)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as e:
        raise MissingExtra(needs_extra(f"loading {Path(path).name} as a torch network (torch and safetensors; "
                                       f"{e.name} is missing)", "train"), name=e.name) from None

    if Path(path).suffix.lower() == ".onnx" and not Path(path).with_suffix(".safetensors").exists():
        raise ModelError(f"{path}: an exported ONNX network, which runs on the onnx backend only; this needs the "
                         "model's .safetensors weights and .json spec")
    path = Path(path).with_suffix(".safetensors")
    if not path.exists():
        raise ModelError(f"{path}: no such weights file")
    spec = read_spec(path)
    check_file(path, spec.sha256, "safetensors", trust_unhashed)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{path}: not a readable safetensors file ({e})") from None
    model = create_model(spec.arch, num_classes=len(spec.classes), **spec.options)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ModelError(f"{path}: weights do not match architecture {spec.arch!r} {spec.options}: "
                         f"{' '.join(first[:3])[:400]}") from None
    model.eval()
    return model, spec
