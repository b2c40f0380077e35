"""A model's network as ONNX: exported from torch when it is bundled (and shipped beside the
weights), read back by the ONNX Runtime classifier without torch.

The ONNX file is the raw network: uint8 faces are normalised, cropped and mirrored for
test-time augmentation in numpy (:meth:`Preprocess.views`), and the calibration is applied to
its logits in numpy too (:class:`emolens.models.calibration.Calibration`), exactly as for the
torch network; so both runtimes share every step but the network itself.

An exported file (``emolens export``) also carries the model's contract as ONNX metadata props:
its classes, preprocessing, calibration, test-time augmentation and the emolens version, each
key a JSON value (:func:`with_metadata`), so it runs without its JSON spec
(``Recognizer(model="NAME.onnx")``) and other tools can read what it expects.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from ..errors import ModelError
from ..files import atomic_write_bytes, sha256_of
from ..models.weights import ModelSpec, check_file, check_pin, load_model, read_spec, write_spec
from ..version import __version__

#: The ONNX opset the networks are exported with (ONNX Runtime >= 1.17 runs it).
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "faces", "logits"

#: The spec fields an exported ONNX file carries as metadata props (each a JSON value).
SPEC_KEYS = ("name", "version", "arch", "options", "classes", "preprocess", "calibration", "tta", "metrics")
#: Further props: the emolens version that wrote the file, and the sha256 of the file without its
#: metadata props (checked on load: a damaged network is refused).
VERSION_KEY, GRAPH_KEY = "emolens_version", "emolens_graph_sha256"
#: ``ModelProto.metadata_props`` (repeated ``StringStringEntryProto {key = 1; value = 2}``) in onnx.proto.
_METADATA_FIELD = 14


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
    ``save_model`` alone, or averaged) is exported from torch once and cached by the weights' hash.
    An exported ``NAME.onnx`` (``weights`` itself) gives the spec its metadata props carry."""
    if weights.suffix.lower() == ".onnx":
        data = weights.read_bytes()
        return data, spec_from_onnx(data, weights)
    spec = read_spec(weights)
    bundled = check_pin(weights, spec.sha256, "safetensors")  # a bundled spec edited beside its pins is refused
    if spec.onnx.get("file") or bundled:
        path = weights.parent / Path(spec.onnx.get("file") or weights.with_suffix(".onnx").name).name
        if not path.is_file():
            raise ModelError(f"{path}: no such ONNX file (named by {weights.with_suffix('.json').name})")
        check_file(path, str(spec.onnx.get("sha256", "")), "onnx", trust_unhashed)
        return path.read_bytes(), spec
    return exported_from_torch(weights, spec, trust_unhashed), spec


def int8_bytes(weights: Path, spec: ModelSpec, trust_unhashed: bool = False) -> bytes:
    """The INT8 network its spec names (``spec.int8``, :mod:`emolens.runtime.quantize`), checked
    against its sha256 (and, for a bundled model, the pinned one) before it is read."""
    path = weights.parent / Path(spec.int8["file"]).name
    if not path.is_file():
        raise ModelError(f"{path}: no such INT8 ONNX file (named by {weights.with_suffix('.json').name})")
    check_file(path, str(spec.int8.get("sha256", "")), "int8", trust_unhashed)
    return path.read_bytes()


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


# ---------------------------------------------------------------- metadata props

def with_metadata(data: bytes, spec: ModelSpec) -> bytes:
    """The ONNX model ``data`` with ``spec``'s contract as its metadata props (any it had are
    replaced). The network's bytes are not touched: protobuf lets fields be appended to a message,
    so no ONNX package is needed (the light install exports too)."""
    graph, _ = split_metadata(data)
    fields = spec.to_dict()
    props = {key: json.dumps(fields[key]) for key in SPEC_KEYS}
    props[VERSION_KEY] = __version__
    props[GRAPH_KEY] = hashlib.sha256(graph).hexdigest()
    return graph + b"".join(_field(_METADATA_FIELD, _field(1, k.encode()) + _field(2, v.encode()))
                            for k, v in props.items())


def spec_from_onnx(data: bytes, path: Path) -> ModelSpec:
    """The spec an exported ONNX file carries (:func:`with_metadata`), its network checked against
    the hash it records; a file without it is an error that says how to make one."""
    graph, props = split_metadata(data)
    if not all(key in props for key in (*SPEC_KEYS, GRAPH_KEY)):
        raise ModelError(f"{path}: an ONNX file without emolens metadata (classes, preprocessing, calibration); "
                         "load its .safetensors + .json spec, or write it with `emolens export`")
    if hashlib.sha256(graph).hexdigest() != props[GRAPH_KEY]:
        raise ModelError(f"{path}: checksum mismatch (the network differs from the one its metadata describes); "
                         "the file is damaged or was edited")
    try:
        return ModelSpec.from_dict({key: json.loads(props[key]) for key in SPEC_KEYS})
    except (ValueError, TypeError) as e:
        raise ModelError(f"{path}: its emolens metadata is not a valid model spec ({e})") from None


def split_metadata(data: bytes) -> tuple[bytes, dict[str, str]]:
    """(the model without its metadata props, those props) of serialised ONNX ``data``."""
    rest, props, i = [], {}, 0
    try:
        while i < len(data):
            start = i
            tag, i = _varint(data, i)
            number, kind = tag >> 3, tag & 7
            if kind == 0:
                _, i = _varint(data, i)
            elif kind == 2:
                size, i = _varint(data, i)
                if number == _METADATA_FIELD:
                    entry = dict(_strings(data[i:i + size]))
                    props[entry.get(1, "")] = entry.get(2, "")
                i += size
            elif kind in (1, 5):
                i += 8 if kind == 1 else 4
            else:
                raise ValueError(f"wire type {kind}")
            if i > len(data):
                raise ValueError("truncated")
            if number != _METADATA_FIELD:
                rest.append(data[start:i])
    except (ValueError, IndexError) as e:
        raise ModelError(f"not a readable ONNX file ({e})") from None
    return b"".join(rest), props


def _strings(message: bytes):
    """(field number, text) of a message's length-delimited fields (a StringStringEntryProto)."""
    i = 0
    while i < len(message):
        tag, i = _varint(message, i)
        size, i = _varint(message, i)
        yield tag >> 3, message[i:i + size].decode("utf-8", "replace")
        i += size


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    out, n = bytearray(), len(payload)
    for value in ((number << 3) | 2, n):
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload
