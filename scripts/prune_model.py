"""Write a channel-pruned copy of a vgg_fer model (its spec beside it), to fine-tune from.

    python scripts/prune_model.py members/ferplus_v1.safetensors --widths 24 32 64 128 --out ../runs/prune/ferplus-w24.safetensors

Keeps, per convolution, the channels whose batch norm has the largest absolute scale
(:mod:`emolens.models.prune`); the spec says which model it was cut from and carries no metrics or
calibration: the copy is a starting point (``pretrained: FILE`` in a training config), not a model.
It prints the copy's parameters and multiply-adds beside the original's.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from emolens.models.prune import prune_vgg
from emolens.models.registry import count_multiply_adds, count_parameters, create_model
from emolens.models.resolve import resolve_weights
from emolens.models.weights import load_model, save_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a bundled model name or a vgg_fer .safetensors file")
    p.add_argument("--widths", type=int, nargs="+", required=True, help="channels per stage of the copy")
    p.add_argument("--out", required=True, help="the copy's .safetensors path (its spec is written beside it)")
    a = p.parse_args()
    source = resolve_weights(a.model)
    model, spec = load_model(source)
    out = Path(a.out).with_suffix(".safetensors")
    if out.resolve() == source.resolve():
        raise SystemExit(f"{out}: that is the model being pruned; choose another --out")
    options = {**spec.options, "widths": list(a.widths)}
    small = prune_vgg(model, a.widths, lambda widths: create_model(spec.arch, len(spec.classes), **options))
    copy = dataclasses.replace(spec, name=out.stem, options=options, metrics={}, calibration={}, onnx={}, int8={},
                               sha256="", version=f"pruned from {spec.name} {spec.version}")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(small, copy, out)
    side = spec.preprocess.crop or spec.preprocess.input_size
    for label, net in (("original", model), ("pruned", small)):
        print(f"{label:<9} {count_parameters(net):>9,} parameters  {count_multiply_adds(net, side) / 1e6:6.1f} M multiply-adds a face")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
