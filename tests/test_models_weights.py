"""The model registry, safetensors weights with checksums, and the ONNX/torch classifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_OPTIONS, make_tiny_model

from emolens.errors import ModelError
from emolens.models.registry import count_parameters, create_model, list_models
from emolens.models.weights import load_model, read_spec
from emolens.runtime import load_classifier

BUILTIN = ["compact_cnn", "se_resnet", "vgg_fer"]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_models_shape_and_interface(name):
    model = create_model(name, num_classes=5).eval()
    x = torch.zeros(2, 1, 48, 48)
    assert model(x).shape == (2, 5)
    feats = model.forward_features(x)
    assert model.forward_head(feats).shape == (2, 5)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert count_parameters(model) > 100_000


def test_registry_lists_sources_and_rejects_unknown():
    infos = {i.name: i for i in list_models()}
    assert set(BUILTIN) <= set(infos)
    assert all(infos[n].source for n in BUILTIN)
    with pytest.raises(ModelError, match="unknown model 'resnet9000'; known models: .*vgg_fer"):
        create_model("resnet9000", num_classes=7)


def test_weights_roundtrip_and_checksum(tmp_path):
    path = make_tiny_model(tmp_path / "m.safetensors")
    spec = read_spec(path)
    assert len(spec.sha256) == 64 and spec.preprocess.input_size == 48
    model, spec2 = load_model(path)
    assert spec2.classes == spec.classes
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_model(path)


def test_weights_architecture_mismatch(tmp_path):
    import json

    path = make_tiny_model(tmp_path / "m.safetensors")
    spec_path = path.with_suffix(".json")
    spec = json.loads(spec_path.read_text())
    spec["options"] = {**TINY_OPTIONS, "widths": [8, 16]}
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="weights do not match architecture 'vgg_fer'"):
        load_model(path)


def test_onnx_and_torch_agree(tiny_model):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (6, 48, 48), dtype=np.uint8)
    onnx = load_classifier(tiny_model, backend="onnx")
    eager = load_classifier(tiny_model, backend="torch")
    assert onnx.backend == "onnx" and eager.backend == "torch"
    p1, p2 = onnx.predict_proba(faces), eager.predict_proba(faces)
    assert p1.shape == (6, 7)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    np.testing.assert_allclose(p1.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ModelError, match="faces must be 48x48"):
        onnx.predict_proba(np.zeros((1, 40, 40), np.uint8))


def test_unknown_model_name_lists_known():
    with pytest.raises(ModelError, match="unknown model 'nope': not a bundled model \\(default"):
        load_classifier("nope")
