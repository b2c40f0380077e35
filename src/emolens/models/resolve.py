"""Turn a model argument (bundled name, ``default``, a weights path, an exported ``NAME.onnx``
that carries its spec, or an ensemble spec ``NAME.ensemble.yaml``) into a model file."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..weights import DEFAULT_MODEL, bundled_names, bundled_path


def resolve_weights(model: str | Path | None) -> Path:
    name = str(model or "default")
    if name == "default":
        name = DEFAULT_MODEL
    path = bundled_path(name)
    if path is not None:
        return path
    candidate = Path(name)
    if name.lower().endswith((".ensemble.yaml", ".ensemble.yml", ".ensemble.json")):
        from .ensemble import pack_ensemble

        if not candidate.is_file():
            raise ModelError(f"{candidate}: no such ensemble spec")
        return pack_ensemble(candidate)  # one model file holding every member, cached by content
    if candidate.suffix.lower() == ".onnx":  # an exported network with its spec inside (runtime/onnx_model.py)
        if not candidate.is_file():
            raise ModelError(f"{candidate}: no such ONNX file")
        return candidate
    if candidate.suffix in (".safetensors", ".json") or candidate.exists():
        weights = candidate.with_suffix(".safetensors")
        if not weights.exists():
            raise ModelError(f"{weights}: no such weights file")
        return weights
    known = ", ".join(["default"] + bundled_names()) or "none bundled"
    raise ModelError(f"unknown model {name!r}: not a bundled model ({known}), a .safetensors or exported .onnx "
                     "file nor an ensemble spec (NAME.ensemble.yaml)")
