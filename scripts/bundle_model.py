"""Copy a finished training run, or a model made by ``emolens average``, into the package as a bundled
model, with its model card and its network exported to ONNX (``NAME.onnx``, which the runtime reads
without torch); then pin every bundled model's hashes in ``emolens/weights/pins.py``.

    python scripts/bundle_model.py RUN_DIR NAME --command "emolens train --config ..." [--trained-on TEXT] [--tta MODE] [--speed TEXT]
    python scripts/bundle_model.py SOUP.safetensors NAME --data PATH [--split PublicTest] [--version N] [--selection TEXT] ...
    python scripts/bundle_model.py ENSEMBLE.ensemble.yaml NAME --data PATH [--ferplus VOTES] [--split PublicTest] ...
    python scripts/bundle_model.py --onnx-only NAME [NAME ...]   # (re-)export bundled models' ONNX files

An ensemble spec's members are packed into one network (weights and ONNX graph), so the bundled
ensemble is a model like any other; its card lists every member with its numbers on ``--split``.
An averaged model's card lists its members from the record ``emolens average`` wrote beside it and
measures the model on ``--split`` of ``--data``. ``--onnx-only`` exports already bundled models with
the same code path (and writes the ONNX row of their cards).
"""

import argparse
import json
import re
from pathlib import Path

from emolens.engine.card import bundle, bundle_average, bundle_ensemble, onnx_row
from emolens.models.weights import atomic_write_bytes, read_spec
from emolens.runtime.onnx_model import ship_onnx

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "emolens" / "weights"
PINS = WEIGHTS / "pins.py"


def write_pins(folder: Path = WEIGHTS, pins_file: Path = PINS) -> dict:
    """Pin the hashes every bundled spec in ``folder`` gives, in the table of ``pins_file``."""
    pins = {}
    for spec_path in sorted(folder.glob("*.json")):
        spec = read_spec(spec_path)
        pins[spec_path.stem] = {"safetensors": spec.sha256, "onnx": spec.onnx.get("sha256", "")}
        if spec.int8.get("sha256"):                     # the INT8 copy (scripts/quantize_model.py)
            pins[spec_path.stem]["int8"] = spec.int8["sha256"]
    body = "".join(f"    {json.dumps(name)}: {{\n" + "".join(f"        {json.dumps(k)}: {json.dumps(v)},\n" for k, v in h.items())
                   + "    },\n" for name, h in pins.items())
    text = pins_file.read_text()
    new = re.sub(r"(    # BEGIN PINS[^\n]*\n).*?(    # END PINS)", lambda m: m.group(1) + body + m.group(2), text, flags=re.S)
    atomic_write_bytes(pins_file, new.encode())
    return pins


def card_with_onnx_row(name: str, folder: Path = WEIGHTS) -> None:
    """Write (or replace) the ONNX row right below the weights row of a bundled model's card."""
    card = folder / f"{name}.md"
    lines = [ln for ln in card.read_text().splitlines() if not ln.startswith("| onnx |")]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| weights |"))
    lines.insert(at + 1, onnx_row(read_spec(folder / f"{name}.json"), folder))
    atomic_write_bytes(card, ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("source", nargs="?", help="a finished run's folder, an averaged NAME.safetensors or an ensemble spec")
    p.add_argument("name", nargs="?")
    p.add_argument("--onnx-only", nargs="+", metavar="NAME", help="export these bundled models' ONNX files (no new model)")
    p.add_argument("--command", help="the training command, as written in the card (runs only)")
    p.add_argument("--data", nargs="+", help="averaged models: the data set to measure the model on")
    p.add_argument("--ferplus", help="averaged models: FER+ votes for --data")
    p.add_argument("--split", default="PublicTest", help="averaged models: the split it is measured on")
    p.add_argument("--selection", default="", help="averaged models: what the split chose (the card's Data section)")
    p.add_argument("--version", default="1", help="the model's version (bump it when a bundled name gets new weights)")
    p.add_argument("--trained-on", help="hardware description (default: this machine)")
    p.add_argument("--notes", default="")
    p.add_argument("--tta", default="flip", help="evaluate's default test-time augmentation for this model: "
                   "none, flip or ten_crop")
    p.add_argument("--dest", default=None, help="write the model here instead of the package (ensemble members: "
                   "members/); the package's pins are then left alone")
    p.add_argument("--speed", default="", help="the card's Speed section (numbers and the command that gave them)")
    a = p.parse_args()
    dest, docs = (Path(a.dest) if a.dest else WEIGHTS), REPO / "docs" / "models"
    dest.mkdir(parents=True, exist_ok=True)
    if a.onnx_only:
        for name in a.onnx_only:
            print(f"exported {ship_onnx(dest / f'{name}.safetensors')}")
            card_with_onnx_row(name)
    elif not (a.source and a.name):
        p.error("give SOURCE and NAME (or --onnx-only NAME ...)")
    elif a.source.endswith((".ensemble.yaml", ".ensemble.yml", ".ensemble.json")):
        if not a.data:
            p.error("an ensemble needs --data to be measured on")
        out = bundle_ensemble(a.source, dest, docs, a.name, a.data, a.split, a.ferplus, a.trained_on, a.notes,
                              tta=a.tta, speed=a.speed, selection=a.selection, version=a.version)
        print(f"bundled {out}")
    elif a.source.endswith(".safetensors"):
        if not a.data:
            p.error("an averaged model needs --data to be measured on")
        out = bundle_average(a.source, dest, docs, a.name, a.data, a.split, a.ferplus, a.trained_on, a.notes,
                             tta=a.tta, speed=a.speed, selection=a.selection, version=a.version)
        print(f"bundled {out}")
    else:
        if not a.command:
            p.error("a run needs --command (the training command written in the card)")
        out = bundle(a.source, dest, docs, a.name, a.command, a.trained_on, a.notes, tta=a.tta, speed=a.speed,
                     version=a.version)
        print(f"bundled {out}")
    if dest.resolve() != WEIGHTS.resolve():
        raise SystemExit(0)   # not a bundled model: nothing to pin
    for name, hashes in write_pins().items():
        print(f"pinned {name}: " + ", ".join(f"{k} {v[:12]}..." for k, v in hashes.items()))
