"""An exported ONNX file carries the model's contract (classes, preprocessing, calibration, emolens
version) as ONNX metadata props, and emolens runs it without its JSON spec."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

import emolens
from emolens.assets import ASTRONAUT
from emolens.cli import main
from emolens.errors import ModelError
from emolens.models.weights import read_spec
from emolens.weights import bundled_path


def props_of(path) -> dict:
    """The metadata props as ONNX Runtime reads them (no emolens code involved)."""
    return dict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
                .custom_metadata_map)


def logits(path, faces: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"faces": faces})[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "alone" / "ferplus.onnx"
    assert main(["export", "--model", "ferplus", "--out", str(out)]) == 0
    assert not out.with_suffix(".json").exists()
    return out


def test_the_export_carries_the_spec_as_metadata_props(exported):
    spec = read_spec(bundled_path("ferplus"))
    props = props_of(exported)
    assert json.loads(props["classes"]) == spec.classes
    assert json.loads(props["preprocess"]) == {"input_size": 48, "channels": 1, "mean": 0.5, "std": 0.25, "crop": 44}
    assert json.loads(props["calibration"]) == spec.calibration
    assert json.loads(props["tta"]) == spec.tta and props["emolens_version"] == emolens.__version__
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(exported))                       # the onnx package reads them as well
    assert {p.key for p in model.metadata_props} >= {"classes", "preprocess", "calibration", "emolens_version"}


def test_the_network_is_the_shipped_one(exported):
    faces = np.random.default_rng(0).normal(size=(4, 1, 44, 44)).astype(np.float32)
    shipped = bundled_path("ferplus").with_suffix(".onnx")
    assert logits(exported, faces).tobytes() == logits(shipped, faces).tobytes()


def test_it_runs_without_its_json_spec(exported):
    alone = emolens.Recognizer(model=str(exported))
    bundled = emolens.Recognizer(model="ferplus", precision="float")    # the export is the float network
    assert alone.classes == bundled.classes and alone.info()["calibrated"]
    a, b = alone.predict(ASTRONAUT).faces[0], bundled.predict(ASTRONAUT).faces[0]
    assert a.box == b.box and a.probabilities == b.probabilities            # calibrated from the metadata


def test_a_model_exported_from_torch_too(tmp_path, tiny_model):
    out = tmp_path / "tiny.onnx"
    emolens.export(str(tiny_model), out)
    spec = read_spec(tiny_model)
    assert json.loads(props_of(out)["classes"]) == spec.classes
    crops = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    from emolens.runtime import load_classifier

    assert np.allclose(load_classifier(str(out)).predict_proba(crops), load_classifier(str(tiny_model)).predict_proba(crops),
                       atol=1e-6)


def test_an_onnx_file_without_metadata_or_damaged_is_one_clear_error(tmp_path, exported, capsys):
    plain = tmp_path / "plain.onnx"
    shutil.copy(bundled_path("ferplus").with_suffix(".onnx"), plain)        # the shipped network: no props
    with pytest.raises(ModelError, match="without emolens metadata.*emolens export"):
        emolens.Recognizer(model=str(plain))
    damaged = tmp_path / "damaged.onnx"
    data = bytearray(exported.read_bytes())
    data[len(data) // 3] ^= 0xFF                                           # a weight byte of the network
    damaged.write_bytes(bytes(data))
    rc = main(["predict", str(ASTRONAUT), "--model", str(damaged)])
    err = capsys.readouterr().err
    assert rc == 2 and "checksum mismatch" in err and "Traceback" not in err
