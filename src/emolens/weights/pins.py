"""The sha256 of every bundled model's files, pinned in code.

The spec beside a bundled model also gives its hashes, but the spec is a data file that can be
edited along with the weights; these pins cannot drift with them. ``scripts/bundle_model.py``
rewrites the table when it bundles a model; every load of a bundled model checks against it
(:func:`emolens.models.weights.check_file`).
"""

from __future__ import annotations

from pathlib import Path

#: Bundled model name -> {file kind: sha256}; kinds: ``safetensors`` (torch weights), ``onnx`` (the exported
#: network), ``int8`` (its INT8 copy, ``NAME.int8.onnx``).
BUNDLED_SHA256: dict[str, dict[str, str]] = {
    # BEGIN PINS (written by scripts/bundle_model.py)
    "fer2013-ensemble": {
        "safetensors": "414d5417004fca9c40609b1ca5885c094ae548043059ee7b7b3da13909b47e57",
        "onnx": "3199c505618eb6ceacd54abbbaae00762b63f53a93ddfd3e2a5623a278fbbcbf",
        "int8": "b97343ee56323771e1bad8fc65e3bb1971377937f7398351c1ea19691677a908",
    },
    "fer2013": {
        "safetensors": "158c21f07bbd67cc311bc52c5055671a3ab752db51955f2ca4104fbebcf58fde",
        "onnx": "9453f7e08cdb0ba4892332d4614aca16b76bd675377fefbdc6e467ef0f73d77a",
        "int8": "56348e72eabfe893f679b8e202e35de36eb3fd420dffd967d3d4feb9be982aa4",
    },
    "ferplus-ensemble": {
        "safetensors": "278987abb85cc0b9f99a1a5d59a3fffc31ede48dbaa95b1bfd5dc14ae9af84cb",
        "onnx": "096482d23343666c138bcc73f4928c61332f1216d9cc06d761d5480daf3a22e5",
        "int8": "afa7d9165b646fb42de88a38d0d380c583bae5a69d95217bb16b96b3dcec37c3",
    },
    "ferplus-small": {
        "safetensors": "54bffd50ca569842a729718419181bba3cc588bb1ef4d4c7cafcf53e8b908d51",
        "onnx": "46c803a75cb5a03cb59694505350a86217afcb43569d4d58055e80e1450fc08d",
        "int8": "7b3fcd9af9d6fdb2b36d351f9c7267d41d8d17f57773f6f239fe14c35839cf9b",
    },
    "ferplus": {
        "safetensors": "b12e6eccd306cb8fa3444846f0f10424415c9c32c8ab9813dcf1e31ea4adc8c6",
        "onnx": "485278a68b3f622bc23f4bd56e5380ee6ea73a35442dd9bc7c0324dcce261264",
        "int8": "c6475e24ae4f104edf339d641c6ec85f69a7a9b717150584c114b73dd208138b",
    },
    # END PINS
}


def pinned_hashes(path: str | Path) -> dict[str, str] | None:
    """The pinned hashes of the bundled model ``path`` belongs to ({} if bundled but not pinned);
    None when ``path`` is not inside the bundled weights folder."""
    from . import HERE

    path = Path(path)
    if path.resolve().parent != Path(HERE).resolve():
        return None
    return BUNDLED_SHA256.get(path.name.split(".", 1)[0], {})    # NAME.onnx, NAME.int8.onnx -> NAME
