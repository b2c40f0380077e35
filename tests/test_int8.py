"""INT8 classifiers (issue 27): each bundled model ships an INT8 copy of its ONNX network, made
from the shipped float file, with parity measured; every precision loads and answers."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import emolens
from conftest import SHARED_FER, cli_command
from emolens.errors import ModelError
from emolens.files import sha256_of
from emolens.models.weights import read_spec, write_spec
from emolens.runtime import load_classifier
from emolens.runtime.quantize import (MAX_ACCURACY_GAP, MIN_AGREEMENT, choose_precision, parity_holds, pools_in_uint8,
                                      quantize_int8)
from emolens.weights import HERE, bundled_names, bundled_path
from emolens.weights.pins import BUNDLED_SHA256

PHOTO = str(HERE.parent / "assets" / "astronaut.jpg")


@pytest.mark.parametrize("name", bundled_names())
def test_each_bundled_model_ships_an_int8_copy_of_its_float_file_with_parity(name):
    spec = read_spec(bundled_path(name))
    q = spec.int8
    assert (HERE / q["file"]).is_file() and q["file"] == f"{name}.int8.onnx"
    assert sha256_of(HERE / q["file"]) == q["sha256"] == BUNDLED_SHA256[name]["int8"]
    # made from the float network that ships: re-quantise (scripts/quantize_model.py) when it changes
    assert q["source_sha256"] == spec.onnx["sha256"] == sha256_of(HERE / spec.onnx["file"])
    p = q["parity"]
    assert p["split"] == "PublicTest" and p["n"] > 3500
    assert p["agreement"] >= MIN_AGREEMENT and abs(p["accuracy_int8"] - p["accuracy_float"]) <= MAX_ACCURACY_GAP
    assert parity_holds(q)
    card = (HERE / f"{name}.md").read_text()
    assert f"| int8 | `{name}.int8.onnx`" in card and f"argmax agreement {p['agreement']:.2%}" in card


def test_each_precision_loads_and_answers_on_the_photo():
    faces = {}
    for precision in ("auto", "float", "int8"):
        rec = emolens.Recognizer(precision=precision, threads=1)
        assert rec.info()["precision"] == rec.classifier.precision == ("float" if precision == "float" else "int8")
        (face,) = rec.predict(PHOTO).faces
        assert face.label == "happy"
        faces[precision] = np.array(list(face.probabilities.values()))
    assert np.allclose(faces["auto"], faces["int8"])
    assert np.abs(faces["int8"] - faces["float"]).max() < 0.02


@pytest.mark.skipif(not (SHARED_FER / "fer2013.csv.gz").exists(), reason="../shared FER-2013 not present")
def test_int8_agrees_with_float_on_publictest_faces():
    from emolens.data import load_dataset

    part = load_dataset(SHARED_FER / "fer2013.csv.gz").split("PublicTest")
    faces = part.images[:: 6]                                          # 599 faces, every 6th
    for name in bundled_names():
        f, q = (load_classifier(name, precision=p, threads=1).predict_proba(faces, tta="none") for p in ("float", "int8"))
        agreement = float((f.argmax(1) == q.argmax(1)).mean())
        assert agreement >= 0.98, (name, agreement)
        assert np.abs(f - q).mean() < 0.01


def test_quantising_a_model_gives_an_int8_file_its_spec_names_and_auto_follows_parity(tiny_model, tmp_path):
    from emolens.runtime.onnx_model import onnx_bytes, ship_onnx

    weights = tmp_path / tiny_model.name
    for suffix in (".safetensors", ".json"):
        weights.with_suffix(suffix).write_bytes(tiny_model.with_suffix(suffix).read_bytes())
    ship_onnx(weights)
    data, spec = onnx_bytes(weights)
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    int8 = quantize_int8(data, spec.preprocess.normalise(faces))
    target = weights.with_name("tiny7.int8.onnx")
    target.write_bytes(int8)
    assert load_classifier(weights, precision="auto").precision == "float"      # no INT8 entry yet
    with pytest.raises(ModelError, match="no INT8 network"):
        load_classifier(weights, precision="int8")
    spec.int8 = {"file": target.name, "sha256": sha256_of(target), "source_sha256": spec.onnx["sha256"],
                 "parity": {"split": "x", "n": 64, "agreement": 0.5, "accuracy_float": 0.2, "accuracy_int8": 0.2}}
    write_spec(spec, weights)
    assert load_classifier(weights, precision="auto").precision == "float"      # parity misses: float
    f, q = (load_classifier(weights, precision=p).predict_proba(faces, tta="none") for p in ("float", "int8"))
    assert q.shape == f.shape and np.allclose(q.sum(1), 1, atol=1e-5) and np.abs(f - q).max() < 0.05
    spec.int8["parity"].update(agreement=0.995, accuracy_int8=0.201)
    write_spec(spec, weights)
    assert load_classifier(weights, precision="auto").precision == "int8"
    target.write_bytes(int8[:-1] + bytes([int8[-1] ^ 1]))                       # a damaged file is refused
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_classifier(weights, precision="int8")


def test_each_member_of_a_packed_ensemble_keeps_its_first_convolution_and_head_float(tiny_model, tmp_path):
    import onnx

    from emolens.models.ensemble import build_soft_vote
    from emolens.models.weights import load_model, save_model
    from emolens.runtime.onnx_model import ship_onnx
    from emolens.runtime.quantize import end_layers

    member = load_model(tiny_model)
    packed, spec = build_soft_vote([member, member], [0.5, 0.5], "pair")
    weights = save_model(packed, spec, tmp_path / "pair.safetensors")
    path = ship_onnx(weights, packed, spec)
    graph, kept = onnx.load(str(path)), end_layers(path)
    convs = [n.name for n in graph.graph.node if n.op_type == "Conv"]
    heads = [n.name for n in graph.graph.node if n.op_type in ("Gemm", "MatMul")]
    for k in (0, 1):                                 # each member: its first convolution and every head layer
        mine = [c for c in convs if c.startswith(f"/members.{k}/")]
        assert mine[0] in kept and not set(mine[1:]) & set(kept)
        assert {h for h in heads if h.startswith(f"/members.{k}/")} <= set(kept)
    assert len(kept) == 2 + len(heads)


def test_a_float_pool_before_a_quantisation_runs_in_uint8_with_the_same_outputs():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    scale, zero = (helper.make_tensor(n, t, [], [v]) for n, t, v in (("s", TensorProto.FLOAT, 0.05),
                                                                       ("z", TensorProto.UINT8, 3)))
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8, 6, 6])],
                              initializer=[scale, zero])
    before = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    after = pools_in_uint8(before)
    ops = [n.op_type for n in onnx.load_from_string(after).graph.node]
    assert "MaxPool" not in ops and "NhwcMaxPool" in ops
    assert pools_in_uint8(after) == after                                      # nothing left to rewrite
    x = np.random.default_rng(0).normal(0, 3, (4, 8, 12, 12)).astype(np.float32)
    y0, y1 = (ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0] for m in (before, after))
    assert y0.shape == (4, 8, 6, 6) and np.array_equal(y0, y1) and np.unique(y0).size > 10


@pytest.mark.parametrize("name", bundled_names())
def test_no_bundled_int8_network_pools_in_float(name):
    import onnx

    ops = [n.op_type for n in onnx.load(str(HERE / f"{name}.int8.onnx")).graph.node]
    assert "MaxPool" not in ops


def test_bad_precisions_are_one_line_errors():
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        choose_precision({}, "int4", "m")
    r = subprocess.run(cli_command("predict", PHOTO, "--precision", "int8", "--backend", "torch"),
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "emolens: error: precision int8 runs on the onnx backend only; use backend onnx or precision float"]
    r = subprocess.run(cli_command("predict", PHOTO, "--precision", "int8", "--json", "-"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_models_listing_says_which_precision_runs(capsys):
    from emolens.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in bundled_names():
        agreement = read_spec(bundled_path(name)).int8["parity"]["agreement"]
        assert f"runs INT8 (agreement {agreement:.2%} with float on PublicTest)" in out
