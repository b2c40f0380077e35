"""Copy a finished training run, or a model made by ``emolens average``, into the package as a bundled
model, with its model card.

    python scripts/bundle_model.py RUN_DIR NAME --command "emolens train --config ..." [--trained-on TEXT] [--tta MODE] [--speed TEXT]
    python scripts/bundle_model.py SOUP.safetensors NAME --data PATH [--split PublicTest] [--version N] [--selection TEXT] ...

An averaged model's card lists its members from the record ``emolens average`` wrote beside it and
measures the model on ``--split`` of ``--data``.
"""

import argparse
from pathlib import Path

from emolens.engine.card import bundle, bundle_average

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("source", help="a finished run's folder, or an averaged NAME.safetensors")
    p.add_argument("name")
    p.add_argument("--command", help="the training command, as written in the card (runs only)")
    p.add_argument("--data", nargs="+", help="averaged models: the data set to measure the model on")
    p.add_argument("--ferplus", help="averaged models: FER+ votes for --data")
    p.add_argument("--split", default="PublicTest", help="averaged models: the split it is measured on")
    p.add_argument("--selection", default="", help="averaged models: what the split chose (the card's Data section)")
    p.add_argument("--version", default="1", help="averaged models: the model's version")
    p.add_argument("--trained-on", help="hardware description (default: this machine)")
    p.add_argument("--notes", default="")
    p.add_argument("--tta", default="flip", help="evaluate's default test-time augmentation for this model: "
                   "none, flip or ten_crop")
    p.add_argument("--speed", default="", help="the card's Speed section (numbers and the command that gave them)")
    a = p.parse_args()
    dest, docs = REPO / "src" / "emolens" / "weights", REPO / "docs" / "models"
    if a.source.endswith(".safetensors"):
        if not a.data:
            p.error("an averaged model needs --data to be measured on")
        out = bundle_average(a.source, dest, docs, a.name, a.data, a.split, a.ferplus, a.trained_on, a.notes,
                             tta=a.tta, speed=a.speed, selection=a.selection, version=a.version)
    else:
        if not a.command:
            p.error("a run needs --command (the training command written in the card)")
        out = bundle(a.source, dest, docs, a.name, a.command, a.trained_on, a.notes, tta=a.tta, speed=a.speed)
    print(f"bundled {out}")
