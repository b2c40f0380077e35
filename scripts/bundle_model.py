"""Copy a finished training run into the package as a bundled model, with its model card.

    python scripts/bundle_model.py RUN_DIR NAME --command "emolens train --config ..." [--trained-on TEXT] [--tta MODE] [--speed TEXT]
"""

import argparse
from pathlib import Path

from emolens.engine.card import bundle

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("name")
    p.add_argument("--command", required=True, help="the training command, as written in the card")
    p.add_argument("--trained-on", help="hardware description (default: this machine)")
    p.add_argument("--notes", default="")
    p.add_argument("--tta", default="flip", help="evaluate's default test-time augmentation for this model: "
                   "none, flip or ten_crop")
    p.add_argument("--speed", default="", help="the card's Speed section (numbers and the command that gave them)")
    a = p.parse_args()
    out = bundle(a.run_dir, REPO / "src" / "emolens" / "weights", REPO / "docs" / "models", a.name, a.command,
                 a.trained_on, a.notes, tta=a.tta, speed=a.speed)
    print(f"bundled {out}")
