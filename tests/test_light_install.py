"""The light install: every command listed without torch, a missing extra named in one line,
`emolens predict` on the bundled photo without torch; the shipped ONNX files (same numbers as the
torch weights, opset and hashes in the spec and card); hashes pinned in code; trust_unhashed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_FER, make_tiny_model

import emolens
import emolens.weights
from emolens.assets import ASTRONAUT
from emolens.cli import COMMANDS, build_parser
from emolens.errors import ModelError
from emolens.models.weights import ModelSpec, load_model, read_spec, sha256_of, write_spec
from emolens.runtime import load_classifier
from emolens.runtime.onnx_model import OPSET, ship_onnx
from emolens.weights import DEFAULT_MODEL, HERE, bundled_names
from emolens.weights.pins import BUNDLED_SHA256

TRAIN_PACKAGES = ("torch", "lightning", "sklearn", "imblearn", "matplotlib", "safetensors", "onnx")

#: What the missing-extra lines tell to run here: in a source checkout (this repository, with its
#: constraints.txt) the editable install pinned by the constraints, else the package from PyPI.
CHECKOUT = Path(emolens.__file__).resolve().parents[2]
IN_CHECKOUT = (CHECKOUT / "constraints.txt").is_file() and (CHECKOUT / "pyproject.toml").is_file()


def hint(extra: str) -> str:
    if IN_CHECKOUT:
        return f"pip install -e '.[{extra}]' -c constraints.txt (in {CHECKOUT})"
    return f"pip install 'emolens[{extra}]'"


def without(*packages: str) -> str:
    """Boot code for ``python -c``: ``packages`` cannot be imported (as if not installed), then the CLI runs."""
    return (f"import sys\nBLOCKED = {packages!r}\n"
            "class Blocker:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in BLOCKED:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Blocker())\n"
            "from emolens.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")


def run_without(packages: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", without(*packages), *args], capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------- the static command list


def test_the_parser_registers_exactly_the_static_command_list_in_order():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == [c.name for c in COMMANDS]
    assert {c.extra for c in COMMANDS} == {None, "train", "serve", "cluster"}


def test_help_lists_every_command_without_torch_and_imports_none_of_the_extras():
    r = run_without(TRAIN_PACKAGES + ("fastapi",), "--help")
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("    ") and line.strip()]
    assert [c.name for c in COMMANDS] == [n for n in listed if n in {c.name for c in COMMANDS}]
    assert "train" in listed and "evaluate" in listed and "serve" in listed


def test_building_the_parser_imports_no_extra():
    code = ("import sys; from emolens.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {TRAIN_PACKAGES + ('fastapi', 'uvicorn')!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("argv, extra", [
    (["train", "--config", "x.yaml"], "train"),
    (["evaluate", "--model", "default", "--data", "nowhere"], "train"),
    (["experiment", "x.yaml"], "train"),
    (["serve"], "serve"),
])
def test_a_command_whose_extra_is_missing_names_it_in_one_line(argv, extra):
    r = run_without(TRAIN_PACKAGES + ("fastapi",), *argv)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"emolens: error: `emolens {argv[0]}` needs emolens[{extra}]: {hint(extra)}"]


def test_models_lists_the_bundled_models_without_torch():
    r = run_without(TRAIN_PACKAGES, "models")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.split()[:1] == ["ferplus"] and line.endswith("(default)") for line in lines)
    assert any(line.split()[:1] == ["fer2013"] and "(PublicTest, validation; as shipped" in line for line in lines)
    assert lines[-1] == f"architectures to train: they need torch, {hint('train')}"


def test_predict_runs_the_bundled_model_without_torch_and_the_torch_backend_names_its_extra(tmp_path):
    out = tmp_path / "faces.json"
    r = run_without(TRAIN_PACKAGES, "predict", str(ASTRONAUT), "--json", str(out))
    assert r.returncode == 0, r.stderr
    faces = json.loads(out.read_text())["images"][0]["faces"]
    assert len(faces) == 1 and faces[0]["label"] == "happy" and faces[0]["confidence"] > 0.9
    r = run_without(TRAIN_PACKAGES, "predict", str(ASTRONAUT), "--backend", "torch")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("emolens: error: loading ferplus.safetensors as a torch network "
                                               "(torch and safetensors; safetensors is missing) needs emolens[train]")
    assert hint("train") in r.stderr


def test_export_runs_without_torch_as_emolens_export_does(tmp_path):
    """The bundled model's shipped ONNX file is written without torch, by the command as by the call;
    a model that must be exported from torch names the extra in one line."""
    out = tmp_path / "ferplus.onnx"
    r = run_without(TRAIN_PACKAGES, "export", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # the shipped network, with the model's contract appended as ONNX metadata props (issue 25 item 10)
    assert out.read_bytes().startswith((HERE / "ferplus.onnx").read_bytes()) and "input 'faces'" in r.stdout
    import onnx

    props = {p.key for p in onnx.load(str(out)).metadata_props}
    assert {"classes", "preprocess", "calibration"} <= props, props
    mine = make_tiny_model(tmp_path / "mine.safetensors")          # no ONNX file beside it: needs torch
    r = run_without(TRAIN_PACKAGES, "export", "--model", str(mine), "--out", str(tmp_path / "mine.onnx"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "needs emolens[train]: " + hint("train") in r.stderr and "Traceback" not in r.stderr


CALL_WITHOUT = """
import emolens
from emolens.errors import EmolensError, MissingExtra
for call in ({calls}):
    try:
        call()
    except Exception as e:
        print(type(e).__name__, isinstance(e, EmolensError), isinstance(e, ModuleNotFoundError), e, sep=" | ")
"""


def test_python_calls_name_their_missing_extra_as_the_cli_does(tmp_path):
    """emolens.train() and friends without their extra raise MissingExtra (an EmolensError, and still a
    ModuleNotFoundError) whose one line names the extra and the install command, not a bare import error."""
    from conftest import synthetic_faces, write_fer_csv

    data = str(write_fer_csv(tmp_path / "fer.csv", *synthetic_faces(14), ["Training"] * 7 + ["PublicTest"] * 7))
    calls = (f"lambda: emolens.train(data=[{data!r}], epochs=1)", f"lambda: emolens.evaluate('fer2013', [{data!r}])",
             f"lambda: emolens.export({str(make_tiny_model(tmp_path / 'm.safetensors'))!r}, {str(tmp_path / 'm.onnx')!r})",
             "lambda: __import__('emolens.serve', fromlist=['create_app']).create_app()")
    code = without(*TRAIN_PACKAGES, "fastapi").split("from emolens.cli import main")[0] + \
        CALL_WITHOUT.format(calls=", ".join(calls))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4, r.stdout
    for line, (what, extra) in zip(lines, (("(for emolens.train)", "train"), ("(for emolens.evaluate)", "train"),
                                           ("loading m.safetensors as a torch network", "train"),
                                           ("(for emolens.create_app)", "serve"))):
        kind, is_emolens, is_import, message = line.split(" | ")
        assert (kind, is_emolens, is_import) == ("MissingExtra", "True", "True"), line
        assert what in message and message.endswith(f" needs emolens[{extra}]: {hint(extra)}"), line


def test_the_install_hint_outside_a_source_checkout_is_the_package(monkeypatch):
    from emolens import errors

    assert errors.install_hint("train") == hint("train")
    monkeypatch.setattr(errors, "source_checkout", lambda: None)     # an installed package
    assert errors.needs_extra("`emolens train`", "train") == \
        "`emolens train` needs emolens[train]: pip install 'emolens[train]'"


# ---------------------------------------------------------------- the shipped ONNX files


def real_face_crops(size: int) -> np.ndarray:
    """Aligned crops of the bundled photo's face at several margins, plus 256 FER-2013 PublicTest faces
    when ../shared holds the data set: real faces, as the runtime sees them."""
    from emolens.vision.align import align_faces, to_grey
    from emolens.vision.detectors import create_detector
    from emolens.vision.images import read_image

    rgb = read_image(ASTRONAUT)
    dets = create_detector("retinaface").detect(rgb)
    assert len(dets) == 1
    crops = [align_faces(to_grey(rgb), dets, size, margin)[0] for margin in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6)]
    faces = np.stack(crops)
    if (SHARED_FER / "fer2013.csv.gz").exists() and size == 48:
        from emolens.data.fer2013 import read_fer2013

        val = read_fer2013(SHARED_FER / "fer2013.csv.gz").split("PublicTest")
        faces = np.concatenate([faces, val.images[:256]])
    return faces


@pytest.mark.parametrize("name", bundled_names())
def test_the_shipped_onnx_agrees_with_the_torch_weights_on_real_faces(name):
    onnx_clf, torch_clf = load_classifier(name, backend="onnx"), load_classifier(name, backend="torch")
    assert (onnx_clf.backend, torch_clf.backend) == ("onnx", "torch")
    faces = real_face_crops(onnx_clf.input_size)
    for tta in ("none", "flip", "ten_crop"):
        z_onnx, z_torch = onnx_clf.view_logits(faces, tta), torch_clf.view_logits(faces, tta)
        np.testing.assert_allclose(z_onnx, z_torch, atol=1e-4, rtol=0)
        p_onnx, p_torch = onnx_clf.predict_proba(faces, tta), torch_clf.predict_proba(faces, tta)
        np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4, rtol=0)   # calibration: the same numpy code
    # the ONNX file is the raw network: calibration is applied after it, so raw and calibrated differ
    raw = load_classifier(name, backend="onnx", raw=True).predict_proba(faces)
    assert np.abs(raw - onnx_clf.predict_proba(faces)).max() > 1e-3


@pytest.mark.parametrize("name", bundled_names())
def test_the_spec_and_card_state_the_onnx_file_its_opset_and_hash_and_the_pins_agree(name):
    spec = read_spec(HERE / f"{name}.json")
    onnx_path = HERE / spec.onnx["file"]
    assert spec.onnx["opset"] == OPSET and onnx_path == HERE / f"{name}.onnx"
    assert spec.onnx["sha256"] == sha256_of(onnx_path) == BUNDLED_SHA256[name]["onnx"]
    assert spec.sha256 == sha256_of(HERE / f"{name}.safetensors") == BUNDLED_SHA256[name]["safetensors"]
    import onnx

    assert onnx.load(str(onnx_path)).opset_import[0].version == OPSET
    card = (HERE / f"{name}.md").read_text()
    assert f"| onnx | `{name}.onnx` (ONNX opset {OPSET}," in card and spec.onnx["sha256"] in card
    assert set(BUNDLED_SHA256) == set(bundled_names()) and DEFAULT_MODEL in BUNDLED_SHA256


def test_a_user_model_with_a_shipped_onnx_file_is_read_without_exporting(tmp_path, monkeypatch):
    from emolens.data.cache import cache_dir

    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path / "cache"))   # empty: an export would land here
    weights = make_tiny_model(tmp_path / "mine.safetensors")
    onnx_path = ship_onnx(weights)
    spec = read_spec(weights)
    assert spec.onnx == {"file": "mine.onnx", "sha256": sha256_of(onnx_path), "opset": OPSET}
    faces = real_face_crops(48)[:6]
    clf = load_classifier(weights)
    assert not (cache_dir() / "onnx").exists()   # read from beside the weights, not exported again
    np.testing.assert_allclose(clf.predict_proba(faces), load_classifier(weights, backend="torch").predict_proba(faces),
                               atol=1e-4, rtol=0)
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"mine\.onnx: checksum mismatch .* in the spec"):
        load_classifier(weights)
    load_classifier(make_tiny_model(tmp_path / "plain.safetensors"))   # no ONNX file shipped: exported, cached
    assert len(list((cache_dir() / "onnx").glob("*.onnx"))) == 1


# ---------------------------------------------------------------- hashes pinned in code


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch):
    """The bundled models copied to a folder that stands in for the package's weights folder."""
    folder = tmp_path / "weights"
    shutil.copytree(HERE, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(emolens.weights, "HERE", folder)
    return folder


def edit_spec(path, **changes) -> None:
    spec = read_spec(path)
    for key, value in changes.items():
        setattr(spec, key, value)
    write_spec(spec, path)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_an_untouched_copy_of_the_bundled_files_loads(bundled_copy, backend):
    clf = load_classifier("ferplus", backend=backend)
    assert clf.classes[:2] == ["neutral", "happy"]


def test_bundled_weights_edited_together_with_their_spec_are_refused(bundled_copy):
    weights = bundled_copy / "ferplus.safetensors"
    model, spec = load_model(weights)
    from emolens.models.weights import save_model

    with __import__("torch").no_grad():
        next(model.parameters()).add_(0.01)
    save_model(model, spec, weights)   # new weights and a spec giving their (new) hash: consistent, but not pinned
    for backend in ("torch", "onnx"):
        with pytest.raises(ModelError, match=r"ferplus\.safetensors: the spec of this bundled model gives sha256 "
                                             r"[0-9a-f]{12}\.\.\., but emolens pins " + BUNDLED_SHA256["ferplus"]["safetensors"][:12] + r"\.\.\.: the bundled "
                                             r"files were edited or replaced \(reinstall emolens\)"):
            load_classifier("ferplus", backend=backend)


def test_a_bundled_onnx_file_edited_together_with_its_spec_is_refused(bundled_copy):
    onnx_path = bundled_copy / "ferplus.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"ferplus\.onnx: checksum mismatch \(sha256 [0-9a-f]{12}\.\.\., pinned by emolens"):
        load_classifier("ferplus")
    spec = read_spec(bundled_copy / "ferplus.json")
    edit_spec(bundled_copy / "ferplus.json", onnx={**spec.onnx, "sha256": sha256_of(onnx_path)})
    with pytest.raises(ModelError, match=r"ferplus\.onnx: the spec of this bundled model gives sha256 .* but emolens pins "
                                         + BUNDLED_SHA256["ferplus"]["onnx"][:12]):
        load_classifier("ferplus")
    load_classifier("ferplus", backend="torch")   # the torch weights are untouched


def test_a_bundled_spec_without_a_hash_is_refused_even_when_trusting_unhashed(bundled_copy):
    edit_spec(bundled_copy / "ferplus.json", sha256="")
    for backend in ("torch", "onnx"):
        with pytest.raises(ModelError, match="gives sha256 none..., but emolens pins " + BUNDLED_SHA256["ferplus"]["safetensors"][:12]):
            load_classifier("ferplus", backend=backend, trust_unhashed=True)


# ---------------------------------------------------------------- user models without a hash


@pytest.fixture
def unhashed_model(tmp_path):
    weights = make_tiny_model(tmp_path / "unhashed.safetensors")
    edit_spec(weights, sha256="")
    return weights


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_spec_without_a_hash_loads_only_when_trusted_and_says_what_it_skips(unhashed_model, backend, capsys):
    with pytest.raises(ModelError, match=r"unhashed\.safetensors: its spec \(unhashed\.json\) gives no sha256, so the "
                                         r"file cannot be checked; pass --trust-unhashed \(Python: trust_unhashed=True\)"):
        load_classifier(unhashed_model, backend=backend)
    clf = load_classifier(unhashed_model, backend=backend, trust_unhashed=True)
    assert clf.predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    assert "no sha256 in its spec; loading it unchecked (--trust-unhashed skips the integrity check)" in \
        capsys.readouterr().err


def test_the_cli_refuses_an_unhashed_model_in_one_line_unless_trust_unhashed(unhashed_model):
    from conftest import cli_command

    base = cli_command("predict", str(ASTRONAUT), "--model", str(unhashed_model))
    r = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "gives no sha256" in r.stderr and "--trust-unhashed" in r.stderr
    r = subprocess.run(base + ["--trust-unhashed"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "loading it unchecked" in r.stderr and "face 1" in r.stdout


def test_the_api_takes_trust_unhashed(unhashed_model):
    from emolens import Recognizer

    with pytest.raises(ModelError, match="trust_unhashed=True"):
        Recognizer(model=str(unhashed_model))
    frame = Recognizer(model=str(unhashed_model), trust_unhashed=True).predict(ASTRONAUT)
    assert len(frame.faces) == 1 and sum(frame.faces[0].probabilities.values()) == pytest.approx(1, abs=1e-5)



# ---------------------------------------------------------------- video and serve in the light install


def test_video_without_torch_or_matplotlib_writes_the_csv_and_says_the_plots_need_an_extra(tmp_path):
    import cv2

    from emolens.assets import face_frame

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(8):
        writer.write(cv2.cvtColor(face_frame(1, offset=(4 * i, 0)), cv2.COLOR_RGB2BGR))
    writer.release()
    csv_path = tmp_path / "clip.csv"
    r = run_without(TRAIN_PACKAGES, "video", str(clip), "--csv", str(csv_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"emolens: timeline plots skipped: they need matplotlib: {hint('plot')}" in r.stderr
    rows = csv_path.read_text().splitlines()
    assert len(rows) == 9 and all(",happy," in row for row in rows[1:])
    assert not list(tmp_path.glob("*.png"))


def test_the_web_service_answers_without_torch():
    code = without(*TRAIN_PACKAGES).replace(
        "from emolens.cli import main\nsys.exit(main(sys.argv[1:]))\n",
        "from fastapi.testclient import TestClient\nfrom emolens.serve.app import create_app\n"
        "client = TestClient(create_app(), base_url='http://localhost')\n"
        "r = client.post('/v1/predict', files={'file': ('a.jpg', open(sys.argv[1], 'rb'), 'image/jpeg')})\n"
        "print(r.status_code, r.json()['model']['backend'], [f['label'] for f in r.json()['faces']])\n")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(ASTRONAUT)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "200 onnx ['happy']"
