"""Write the INT8 copy of a model's ONNX network (``NAME.int8.onnx`` beside ``NAME.onnx``) and its
parity with the float network into the model's spec and card; for a bundled model, pin its hash.

    python scripts/quantize_model.py ferplus --ferplus ../shared/data/fer2013/fer2013new.csv
    python scripts/quantize_model.py fer2013
    python scripts/quantize_model.py members/ferplus_vgg_nsl.safetensors --ferplus ../shared/data/fer2013/fer2013new.csv

ONNX Runtime static quantisation (:func:`emolens.runtime.quantize.quantize_int8`: QDQ, per-channel
weights, MinMax activation ranges) calibrated on ``--faces`` faces drawn (seed 0) from the
``Training`` split of ``--data``, preprocessed as the model's spec says. Parity, measured on
``--split`` (PublicTest, the validation split) with the shipped calibration, one pass: argmax
agreement of the INT8 network with the float one, and the accuracy of each (also with flip TTA).
``precision="auto"`` (the Recognizer's default) runs the INT8 file only where that parity holds
(agreement >= 99%, accuracy within 0.3 points). Re-run it whenever the float ONNX file changes:
the spec records the float file's sha256 (``source_sha256``), which the tests check. When only the
calibration changes (``emolens calibrate``), ``--parity-only`` measures the parity again with it and
leaves the INT8 file as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from emolens.data import load_dataset
from emolens.engine.card import int8_row
from emolens.files import atomic_write_bytes, sha256_of
from emolens.models.resolve import resolve_weights
from emolens.models.weights import read_spec, write_spec
from emolens.runtime import load_classifier
from emolens.runtime.onnx_model import INPUT_NAME, onnx_bytes
from emolens.runtime.quantize import METHOD, parity_holds, quantize_int8
from emolens.weights import HERE as WEIGHTS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def parity(weights: Path, part) -> dict:
    """Agreement and accuracies of the float and INT8 networks on ``part`` (calibrated, one pass and flip)."""
    from emolens.evaluation.evaluate import score_dataset

    out = {"split": part.split_names[0], "n": len(part)}
    for tta, key in (("none", ""), ("flip", "flip_")):
        probs = {p: load_classifier(weights, precision=p, threads=1).predict_proba(part.images, tta=tta)
                 for p in ("float", "int8")}
        classes = read_spec(weights).classes
        out[f"{key}agreement"] = round(float((probs["float"].argmax(1) == probs["int8"].argmax(1)).mean()), 5)
        for p, pr in probs.items():
            out[f"{key}accuracy_{p}"] = round(score_dataset(pr, part, classes).accuracy, 5)
    return out


def card_with_int8_row(weights: Path) -> None:
    """Write (or replace) the INT8 row right below the ONNX row of the model's card (if it has one)."""
    card = weights.with_suffix(".md")
    if not card.exists():
        return
    lines = [ln for ln in card.read_text().splitlines() if not ln.startswith("| int8 |")]
    at = next((i for i, ln in enumerate(lines) if ln.startswith("| onnx |")), None)
    if at is None:
        return
    lines.insert(at + 1, int8_row(read_spec(weights), weights.parent))
    atomic_write_bytes(card, ("\n".join(lines) + "\n").encode())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a bundled model name or a .safetensors path (ensemble members: members/NAME.safetensors)")
    p.add_argument("--data", default=str(DATA), help="FER-2013 csv (default: the shared copy)")
    p.add_argument("--ferplus", help="FER+ votes file, for models trained on FER+ labels")
    p.add_argument("--split", default="PublicTest", help="the split parity is measured on (default PublicTest)")
    p.add_argument("--faces", type=int, default=512, help="calibration faces drawn from Training (default 512)")
    p.add_argument("--parity-only", dest="parity_only", action="store_true",
                   help="keep the INT8 file; measure its parity again with the spec's current calibration")
    a = p.parse_args()
    weights = resolve_weights(a.model)
    if a.parity_only:
        spec = read_spec(weights)
        if not spec.int8.get("file"):
            raise SystemExit(f"{weights}: ships no INT8 copy to measure (run without --parity-only first)")
        spec.int8["parity"] = parity(weights, load_dataset(a.data, ferplus=a.ferplus).split(a.split, "test"))
        write_spec(spec, weights)
        card_with_int8_row(weights)
        report(spec)
        return
    float_onnx, spec = onnx_bytes(weights)
    if not spec.onnx.get("file"):
        raise SystemExit(f"{weights}: ships no ONNX file to quantise (bundle it first: scripts/bundle_model.py)")
    ds = load_dataset(a.data, ferplus=a.ferplus)
    train = ds.split("Training")
    pick = np.random.default_rng(0).choice(len(train), min(a.faces, len(train)), replace=False)
    data = quantize_int8(float_onnx, spec.preprocess.normalise(train.images[np.sort(pick)]), INPUT_NAME)
    target = weights.with_name(f"{weights.stem}.int8.onnx")
    atomic_write_bytes(target, data)
    spec.int8 = {"file": target.name, "sha256": sha256_of(target), "source_sha256": spec.onnx["sha256"],
                 "method": METHOD, "calibration": f"{len(pick)} faces of Training, seed 0"}
    write_spec(spec, weights)
    if weights.parent.resolve() == WEIGHTS.resolve():      # bundled: pin the new file before loading it
        sys.path.insert(0, str(REPO / "scripts"))
        from bundle_model import write_pins

        from emolens.weights import pins

        pins.BUNDLED_SHA256.update(write_pins())           # (this process read the table before)
    spec.int8["parity"] = parity(weights, ds.split(a.split, "test"))
    write_spec(spec, weights)
    card_with_int8_row(weights)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB)")
    report(spec)


def report(spec) -> None:
    q = spec.int8["parity"]
    print(f"{q['split']} n={q['n']}: agreement "
          f"{q['agreement']:.2%} (flip {q['flip_agreement']:.2%}), accuracy float {q['accuracy_float']:.2%} "
          f"-> int8 {q['accuracy_int8']:.2%} (flip {q['flip_accuracy_float']:.2%} -> {q['flip_accuracy_int8']:.2%}); "
          f"parity {'holds: the default (precision auto)' if parity_holds(spec.int8) else 'FAILS: auto stays float'}")


if __name__ == "__main__":
    main()
