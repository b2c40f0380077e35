"""`emolens models`, `Recognizer.info()` and `/v1/models` show the numbers users get: as shipped
(calibrated, with the operating point), the split and the TTA named; the raw ones only with raw."""

from __future__ import annotations

import json
import re

import pytest

import emolens
from emolens.cli import main
from emolens.cli.engine import metrics_text
from emolens.models.calibration import Calibration
from emolens.models.weights import read_spec
from emolens.weights import bundled_path

from conftest import REPO, make_tiny_model, synthetic_faces, write_fer_csv


def readme_headline(row_starts: str = "| FER+ / FER-2013 PublicTest (**validation**") -> dict[str, tuple[str, str]]:
    """model -> (flip TTA, one pass) accuracy as the README's headline table prints them (in sample;
    the out-of-sample row with ``row_starts="| the same, out of sample"``)."""
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(row_starts))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return {name: tuple(cell.split(" / ")) for name, cell in zip(("ferplus", "fer2013"), cells[1:3])}


def test_models_lists_the_readme_numbers(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    outside = readme_headline("| the same, out of sample")
    for name, (flip, one) in readme_headline().items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        oos_flip, oos_one = outside[name]
        steps = Calibration.from_dict(read_spec(bundled_path(name)).calibration).steps()   # e.g. "temperature"
        assert (f"accuracy {one} one pass, {flip} flip TTA (PublicTest, validation; as shipped: {steps}; "
                f"out of sample {oos_one} / {oos_flip})") in line, line


def test_info_and_v1_models_give_the_shipped_metrics_and_raw_the_raw_ones():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from emolens.serve import ServeSettings, create_app

    flip, one = readme_headline()["ferplus"]
    info = emolens.Recognizer().info()["metrics"]
    assert info["calibrated"] and info["split"] == "PublicTest"
    assert (f"{info['accuracy']:.2%}", f"{info['flip_accuracy']:.2%}") == (one, flip)
    with TestClient(create_app(ServeSettings()), base_url="http://127.0.0.1") as client:
        assert client.get("/v1/models").json()["loaded"]["metrics"] == info
    raw = emolens.Recognizer(raw=True).info()["metrics"]
    assert not raw["calibrated"] and f"{raw['accuracy']:.2%}" == "84.89%"      # the card's raw network row


def test_calibrate_stores_what_users_then_get(tmp_path):
    pytest.importorskip("sklearn")
    images, labels = synthetic_faces(140, seed=3)
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 70 + ["PublicTest"] * 70)
    model = make_tiny_model(tmp_path / "m.safetensors")
    out = tmp_path / "m_cal.safetensors"
    emolens.calibrate(str(model), [str(csv)], out=out, ship_rule=False)
    stored = json.loads(out.with_suffix(".json").read_text())["calibration"]["metrics"]
    assert stored["split"] == "PublicTest" and stored["n"] == 70
    for tta, key in (("none", "accuracy"), ("flip", "flip_accuracy")):
        measured = emolens.evaluate(str(out), [str(csv)], split="PublicTest", tta=tta)
        assert stored[key] == pytest.approx(measured.accuracy)
    text = metrics_text(emolens.Recognizer(model=str(out)).info()["metrics"])
    assert re.fullmatch(r"accuracy [\d.]+% one pass, [\d.]+% flip TTA \(PublicTest, validation; as shipped: vector "
                        r"scaling \+ temperature( \+ operating point)?; out of sample [\d.]+% / [\d.]+%\)", text), text
