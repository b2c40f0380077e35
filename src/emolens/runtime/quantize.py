"""INT8 networks: which precision a classifier runs, and how an INT8 copy of a float ONNX network
is made (ONNX Runtime static quantisation).

A model may ship ``NAME.int8.onnx`` beside ``NAME.onnx`` (``scripts/quantize_model.py`` writes
it): QDQ format, per-channel INT8 weights, UINT8 activations whose ranges were calibrated on
faces preprocessed exactly as the spec says. Its spec's ``int8`` entry names the file, its sha256,
the sha256 of the float file it was made from, and its parity with that float network on a
validation split (argmax agreement, accuracy of each). ``precision="auto"`` runs the INT8 file
when its parity holds (:func:`parity_holds`), the float one otherwise.

Running an INT8 file needs ONNX Runtime alone (the light install); making one needs the ``onnx``
package too (``emolens[train]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MissingExtra, ModelError, needs_extra

PRECISIONS = ("auto", "float", "int8")
#: Parity an INT8 network must keep with its float network to be the default (issue 27): the same
#: top class on at least this share of the validation faces ...
MIN_AGREEMENT = 0.99
#: ... and an accuracy at most this far (either way) from the float network's.
MAX_ACCURACY_GAP = 0.003


#: How the INT8 copies are made (recorded in the spec's ``int8`` entry). 7-bit weights
#: (``reduce_range``): AVX2 CPUs without VNNI add pairs of u8 x s8 products in 16 bits, which
#: saturates with full-range weights (the bundled models kept 84-92% argmax agreement so, about
#: 99% with 7-bit weights). The first convolution (it reads the face) and the fully connected head
#: (it writes the logits) of each network (each member of a packed ensemble) stay float
#: (:func:`end_layers`): they cost little and hold much of the remaining disagreement (on 3,000
#: other Training faces: 99.2-99.4% agreement instead of 98.7-99.3%; the packed fer2013-ensemble:
#: 99.02% on PublicTest instead of 98.08% with only the graph's first convolution and last head float).
METHOD = ("onnxruntime quantize_static, QDQ, per-channel 7-bit INT8 weights, UINT8 activations, MinMax calibration; "
          "first convolution and fully connected head of each network float; the max-pooling after the first convolution in UINT8 NHWC")


def parity_holds(int8: dict) -> bool:
    """True when a spec's ``int8`` entry records parity with the float network (see the bounds above)."""
    parity = (int8 or {}).get("parity") or {}
    try:
        return (float(parity["agreement"]) >= MIN_AGREEMENT
                and abs(float(parity["accuracy_int8"]) - float(parity["accuracy_float"])) <= MAX_ACCURACY_GAP)
    except (KeyError, TypeError, ValueError):
        return False


def describe(int8: dict) -> str:
    """``runs INT8 (agreement 99.07% with float on PublicTest)``, or why it runs float."""
    if not (int8 or {}).get("file"):
        return "runs float (no INT8 copy)"
    parity = int8.get("parity") or {}
    measured = (f" (agreement {parity['agreement']:.2%} with float on {parity['split']})"
                if "agreement" in parity else " (parity not measured)")
    return ("runs INT8" if parity_holds(int8) else "runs float: its INT8 copy misses parity") + measured


def choose_precision(int8: dict, precision: str | None, model: str) -> str:
    """``float`` or ``int8``: what a model whose spec's ``int8`` entry is ``int8`` runs at ``precision``
    (``auto``: INT8 where its parity holds; ``int8``: an error when the model ships none)."""
    wanted = (precision or "auto").strip().lower()
    if wanted not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if wanted == "int8" and not (int8 or {}).get("file"):
        raise ModelError(f"{model}: no INT8 network (its spec names no int8 file); make one with "
                         "`python scripts/quantize_model.py`, or use precision float")
    if wanted == "auto":
        return "int8" if (int8 or {}).get("file") and parity_holds(int8) else "float"
    return wanted


class _FacesReader:
    """ONNX Runtime's calibration data reader over normalised faces, a batch at a time."""

    def __init__(self, inputs: np.ndarray, input_name: str, batch: int):
        self.batches = iter([{input_name: np.ascontiguousarray(inputs[i:i + batch], np.float32)}
                             for i in range(0, len(inputs), batch)])

    def get_next(self):
        return next(self.batches, None)


def quantize_int8(float_onnx: bytes, inputs: np.ndarray, input_name: str = "faces", batch: int = 32) -> bytes:
    """An INT8 copy (QDQ, per-channel weights, MinMax-calibrated activations) of the float ONNX
    network ``float_onnx``; ``inputs``: calibration inputs (N, C, S, S) as the network takes them,
    i.e. faces after the spec's :meth:`~emolens.models.weights.Preprocess.normalise`."""
    import tempfile

    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise MissingExtra(needs_extra(f"quantising a network ({e.name} is missing)", "train"), name=e.name) from None
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / name for name in ("float.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(float_onnx)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _FacesReader(inputs, input_name, batch), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=end_layers(pre))
        return pools_in_uint8(out.read_bytes())


def end_layers(path: Path) -> list[str]:
    """Names of the nodes that stay float: the first convolution (it reads the face) and the fully
    connected head after the last convolution (it writes the logits), of each network in the graph
    (a packed ensemble holds one per member, its nodes named ``/members.K/...``)."""
    import re

    import onnx

    networks: dict[str, list] = {}
    for node in onnx.load(str(path)).graph.node:
        member = re.match(r"/members\.\d+/", node.name)          # the prefix of a packed member's nodes
        networks.setdefault(member.group() if member else "", []).append(node)
    keep = []
    for nodes in networks.values():
        convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
        if convs:
            keep += [nodes[convs[0]].name] + [n.name for n in nodes[convs[-1] + 1:] if n.op_type in ("Gemm", "MatMul")]
    return keep


def pools_in_uint8(int8_onnx: bytes) -> bytes:
    """The same network with each float max-pooling whose output is only quantised (the one after
    the float first convolution) done after the quantisation instead, in UINT8 and NHWC.

    ONNX Runtime runs such a pooling as its generic NCHW MaxPool (about a fifth of the bundled
    network's INT8 time: 0.26 of 1.44 ms a face, one core), the other poolings as its fast
    ``NhwcMaxPool`` among the quantised convolutions. Quantisation is monotonic, so pooling the
    quantised values gives the same bytes as quantising the pooled ones: the outputs are identical
    (a test checks), and the transposes cancel against those ONNX Runtime puts around the next
    quantised convolution."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(int8_onnx)
    nodes = list(model.graph.node)
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    rewritten, replaced = [], set()          # replaced: the QuantizeLinear nodes folded into a rewrite
    for node in nodes:
        if id(node) in replaced:
            continue
        after = readers.get(node.output[0], []) if node.output else []
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "MaxPool" or len(node.output) != 1 or node.output[0] in outputs or len(after) != 1
                or after[0].op_type != "QuantizeLinear" or attrs.get("storage_order", 0) != 0
                or len(attrs.get("kernel_shape", ())) != 2):
            rewritten.append(node)
            continue
        quant, src = after[0], node.input[0]
        pool_attrs = {k: v for k, v in attrs.items() if k != "storage_order"}
        rewritten += [helper.make_node("QuantizeLinear", [src, *quant.input[1:]], [f"{src}_uint8"], name=f"{node.name}_quantize"),
                      helper.make_node("Transpose", [f"{src}_uint8"], [f"{src}_nhwc"], perm=[0, 2, 3, 1],
                                       name=f"{node.name}_to_nhwc"),
                      helper.make_node("NhwcMaxPool", [f"{src}_nhwc"], [f"{node.output[0]}_nhwc"], domain="com.microsoft",
                                       name=f"{node.name}_nhwc", **pool_attrs),
                      helper.make_node("Transpose", [f"{node.output[0]}_nhwc"], [quant.output[0]], perm=[0, 3, 1, 2],
                                       name=f"{node.name}_to_nchw")]
        replaced.add(id(quant))      # it comes after the pooling (the graph is in topological order)
    if not replaced:
        return int8_onnx
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model.SerializeToString()
