"""Class maps: how a data set's own labels (numbers, folder names) become canonical class names.

RAF-DB numbers its classes 1..7, AffectNet 0..7, some folder layouts ``1/``, ``2/``...: a class map
(``--class-map 1=surprise,2=fear,...``, a YAML file of ``label: class`` pairs, or a preset name
such as ``rafdb``) says which number is which class. Labels the map does not name are read as
class names (``Happiness`` -> ``happy``), so one map can cover a partly numbered layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..classes import ALIASES, FER2013_CLASSES, canonical_name
from ..errors import DataError
from .yamlfile import read_yaml_mapping

#: Label numbering of the public data sets that give classes as numbers.
PRESET_CLASS_MAPS: dict[str, dict[str, str]] = {
    # RAF-DB basic: EmoLabel/list_patition_label.txt
    "rafdb": {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sad", "6": "angry", "7": "neutral"},
    # AffectNet: the expression column of training.csv / validation.csv (8 uncertain, 9 no-face, 10 not a face are not classes)
    "affectnet": {"0": "neutral", "1": "happy", "2": "sad", "3": "surprise", "4": "fear", "5": "disgust",
                  "6": "angry", "7": "contempt"},
    # FER-2013: the emotion column
    "fer2013": {str(i): c for i, c in enumerate(FER2013_CLASSES)},
}


@dataclass(frozen=True)
class ClassMap:
    """Raw label -> canonical class name; ``source`` names where the map came from (for errors)."""

    mapping: dict[str, str]
    source: str

    def lookup(self, raw: str) -> str:
        """The class of a raw label: the map's entry, else the label read as a class name."""
        key = str(raw).strip()
        if key in self.mapping:
            return self.mapping[key]
        return canonical_name(key)

    def knows(self, raw: str) -> bool:
        try:
            self.lookup(raw)
            return True
        except DataError:
            return False

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.mapping.items())

    def hint(self, otherwise: str) -> str:
        """For an error about a label it cannot read: the map's entries, or ``otherwise`` without any."""
        return f"class map {self.source}: {self.describe()}" if self.mapping else otherwise


#: No map: labels are class names.
NAMES_ONLY = ClassMap({}, "class names")


def parse_class_map(spec: str | Path | dict | None, default: str | None = None) -> ClassMap:
    """A :class:`ClassMap` from ``1=surprise,2=fear``, a YAML file, a preset name or a mapping.

    ``None`` gives the preset ``default`` (or class names only). A class name the map gives that is
    not an expression class is an error naming the map and the entry.
    """
    if spec is None or spec == "":
        return ClassMap(dict(PRESET_CLASS_MAPS[default]), default) if default else NAMES_ONLY
    if isinstance(spec, dict):
        raw, source = spec, "class_map"
    elif str(spec) in PRESET_CLASS_MAPS:
        return ClassMap(dict(PRESET_CLASS_MAPS[str(spec)]), str(spec))
    elif Path(str(spec)).suffix.lower() in (".yaml", ".yml", ".json"):
        raw, source = read_yaml_mapping(str(spec), "class map"), str(spec)
    else:
        raw, source = {}, f"--class-map {spec}"
        for pair in str(spec).split(","):
            if not pair.strip():
                continue
            if "=" not in pair:
                raise DataError(f"{source}: expected LABEL=CLASS pairs separated by commas, got {pair.strip()!r} "
                                f"(or a preset: {', '.join(PRESET_CLASS_MAPS)}, or a YAML file)")
            label, name = pair.split("=", 1)
            raw[label.strip()] = name.strip()
    mapping: dict[str, str] = {}
    for label, name in raw.items():
        try:
            mapping[str(label).strip()] = canonical_name(str(name))
        except DataError:
            raise DataError(f"{source}: label {label}: unknown class name {name!r}; known names: "
                            f"{', '.join(sorted(set(ALIASES)))}") from None
    if not mapping:
        raise DataError(f"{source}: the class map is empty")
    return ClassMap(mapping, source)
