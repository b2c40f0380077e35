"""Channel pruning of the VGG-style network (emolens.models.prune, scripts/prune_model.py), on the one that
ferplus-small was cut from: members/ferplus_v1 (the bundled default until version 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from emolens.errors import ModelError
from emolens.models.backbones import load_pretrained
from emolens.models.prune import prune_vgg
from emolens.models.registry import count_parameters, create_model
from emolens.models.resolve import resolve_weights
from emolens.models.weights import load_model, read_spec

REPO = Path(__file__).resolve().parents[1]
V1 = REPO / "members" / "ferplus_v1.safetensors"


@pytest.fixture(scope="module")
def ferplus():
    return load_model(resolve_weights(str(V1)))


def _builder(spec):
    return lambda widths: create_model(spec.arch, len(spec.classes), **{**spec.options, "widths": widths})


def test_full_width_copy_is_the_same_function(ferplus):
    model, spec = ferplus
    copy = prune_vgg(model, spec.options["widths"], _builder(spec)).eval()
    x = torch.randn(4, 1, 44, 44)
    with torch.no_grad():
        assert torch.allclose(copy(x), model.eval()(x), atol=1e-5)


def test_keeps_the_channels_with_the_largest_batch_norm_scales(ferplus):
    model, spec = ferplus
    small = prune_vgg(model, [24, 32, 64, 128], _builder(spec))
    assert count_parameters(small) < count_parameters(model) / 2
    bn = model.features[1]
    kept = torch.sort(torch.topk(bn.weight.abs(), 24).indices).values
    assert torch.equal(small.features[1].weight, bn.weight[kept])
    assert torch.equal(small.features[0].weight, model.features[0].weight[kept])
    kept2 = torch.sort(torch.topk(model.features[5].weight.abs(), 32).indices).values
    assert torch.equal(small.features[4].weight, model.features[4].weight[kept2][:, kept])
    last = torch.sort(torch.topk(model.features[22].weight.abs(), 128).indices).values
    assert torch.equal(small.head[3].weight, model.head[3].weight[:, last])
    assert torch.equal(small.head[7].weight, model.head[7].weight)          # the output layer is untouched
    with torch.no_grad():
        assert small.eval()(torch.zeros(2, 1, 44, 44)).shape == (2, len(spec.classes))


def test_refuses_what_it_cannot_prune(ferplus):
    model, spec = ferplus
    with pytest.raises(ModelError, match="cannot keep 40 of 28 channels"):
        prune_vgg(model, [40, 32, 64, 128], _builder(spec))
    with pytest.raises(ModelError, match="give 4 convolutions; the network has 7"):
        prune_vgg(model, [24, 32, 64, 128], lambda w: create_model("vgg_fer", 8, widths=w, convs_per_stage=1,
                                                                  global_pool=True, hidden=[256]))
    with pytest.raises(ModelError, match="vgg_fer network with global_pool"):
        prune_vgg(create_model("se_resnet", 8), [8, 8, 8, 8], _builder(spec))


def test_script_writes_a_starting_point_that_loads_whole(tmp_path):
    out = tmp_path / "w24.safetensors"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "prune_model.py"), str(V1), "--widths", "24", "32",
                          "64", "128", "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "58.5 M multiply-adds" in run.stdout and "20.5 M multiply-adds" in run.stdout
    spec = read_spec(out)
    assert spec.options["widths"] == [24, 32, 64, 128] and not spec.calibration and not spec.metrics
    fresh = create_model(spec.arch, len(spec.classes), **spec.options)
    report = load_pretrained(fresh, out, arch=spec.arch, classes=spec.classes)
    assert report.loaded == len(fresh.state_dict()) and not report.skipped and not report.missing
    refused = subprocess.run([sys.executable, str(REPO / "scripts" / "prune_model.py"), str(out), "--widths", "16",
                              "32", "64", "128", "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode != 0 and "that is the model being pruned" in refused.stderr
