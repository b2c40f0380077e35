"""A model's network as ONNX: exported from torch when it is bundled (and shipped beside the
weights), read back by the ONNX Runtime classifier without torch.

The ONNX file is the raw network: uint8 faces are normalised, cropped and mirrored for
test-time augmentation in numpy (:meth:`Preprocess.views`), and the calibration is applied to
its logits in numpy too (:class:`emolens.models.calibration.Calibration`), exactly as for the
torch network; so both runtimes share every step but the network itself.
"""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import ModelError
from ..files import atomic_write_bytes, sha256_of
from ..models.weights import ModelSpec, check_file, check_pin, load_model, read_spec, write_spec

#: The ONNX opset the networks are exported with (ONNX Runtime >= 1.17 runs it).
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "faces", "logits"


def export_onnx(model, spec: ModelSpec, path: str | Path | None = None) -> bytes:
    """Export a torch model to ONNX with a dynamic batch axis; returns the bytes (and writes ``path``)."""
    import warnings

    import torch

    side = spec.preprocess.model_size
    dummy = torch.zeros(1, spec.preprocess.channels, side, side)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), dummy, buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    data = buf.getvalue()
    if path is not None:
        atomic_write_bytes(Path(path), data)
    return data


def ship_onnx(weights: str | Path, model=None, spec: ModelSpec | None = None) -> Path:
    """Export the model ``weights`` (.safetensors + spec) to ``NAME.onnx`` beside it and record the
    file, its sha256 and the opset in the spec; returns the ONNX path. Run when a model is bundled.

    ``model``, ``spec``: the network and spec just saved as ``weights`` (else they are loaded,
    checked, from ``weights``)."""
    weights = Path(weights).with_suffix(".safetensors")
    if model is None or spec is None:
        model, spec = load_model(weights)
    target = weights.with_suffix(".onnx")
    export_onnx(model, spec, target)
    spec.onnx = {"file": target.name, "sha256": sha256_of(target), "opset": OPSET}
    write_spec(spec, weights)
    return target


def onnx_bytes(weights: Path, trust_unhashed: bool = False) -> tuple[bytes, ModelSpec]:
    """The ONNX network of the model ``weights`` and its spec.

    The ONNX file its spec names (always, for a bundled model) is checked against its sha256 and
    read: no torch needed (a training run ships one too). A model without one (saved by
    ``save_model`` alone, or averaged) is exported from torch once and cached by the weights' hash."""
    spec = read_spec(weights)
    bundled = check_pin(weights, spec.sha256, "safetensors")  # a bundled spec edited beside its pins is refused
    if spec.onnx.get("file") or bundled:
        path = weights.parent / Path(spec.onnx.get("file") or weights.with_suffix(".onnx").name).name
        if not path.is_file():
            raise ModelError(f"{path}: no such ONNX file (named by {weights.with_suffix('.json').name})")
        check_file(path, str(spec.onnx.get("sha256", "")), "onnx", trust_unhashed)
        return path.read_bytes(), spec
    return exported_from_torch(weights, spec, trust_unhashed), spec


def exported_from_torch(weights: Path, spec: ModelSpec, trust_unhashed: bool = False) -> bytes:
    """Export a model that ships no ONNX file, cached in the user cache by its weights' hash."""
    from ..files import cache_dir

    model, spec = load_model(weights, trust_unhashed=trust_unhashed)
    key = spec.sha256 or sha256_of(weights)
    cached = cache_dir() / "onnx" / f"{key}-{spec.preprocess.model_size}-opset{OPSET}.onnx"
    if cached.exists():
        return cached.read_bytes()
    try:
        return export_onnx(model, spec, cached)
    except OSError:
        return export_onnx(model, spec)
