"""Canonical expression class sets and the name aliases used by the common data sets."""

from __future__ import annotations

from .errors import DataError

#: FER-2013 label order (the ``emotion`` column: 0..6).
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: FER+ vote columns, in file order (``fer2013new.csv``).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)

#: The 8 FER+ expression classes in canonical names, in vote-column order.
FERPLUS_CLASSES: tuple[str, ...] = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")

#: Named class sets that can be selected with ``--classes``.
CLASS_SETS: dict[str, tuple[str, ...]] = {
    "fer2013": FER2013_CLASSES,
    "ferplus": FERPLUS_CLASSES,
    "basic5": ("angry", "happy", "sad", "surprise", "neutral"),
}

#: Spellings found in AffectNet, RAF-DB, FER+ and the Kaggle folder layout, mapped to canonical names.
ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happiness": "happy", "happy": "happy", "joy": "happy",
    "sadness": "sad", "sad": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt",
}


def canonical_name(name: str) -> str:
    """Map a class name as spelled by some data set (``Happiness``, ``anger``...) to the canonical one."""
    key = name.strip().lower().replace("-", "_")
    # RAF-DB / AffectNet folders are sometimes numbered, e.g. "3_happy"; keep the word part.
    if "_" in key and key.split("_", 1)[0].isdigit():
        key = key.split("_", 1)[1]
    if key not in ALIASES:
        raise DataError(f"unknown class name {name!r}; known names: {', '.join(sorted(set(ALIASES)))}")
    return ALIASES[key]


def class_key(name: str) -> str:
    """The name two class sets are matched by: the canonical name where there is one (``Happiness``,
    ``anger``), else the name in lower case without surrounding spaces (a class of one's own, ``pain``)."""
    try:
        return canonical_name(name)
    except DataError:
        return name.strip().lower()


def resolve_class_set(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A class set from a name in CLASS_SETS, a comma-separated string, or a list of names."""
    if isinstance(spec, str):
        if spec in CLASS_SETS:
            return CLASS_SETS[spec]
        spec = [s for s in spec.split(",") if s.strip()]
    names = tuple(canonical_name(s) for s in spec)
    if len(set(names)) != len(names):
        raise DataError(f"class set {spec!r} names a class twice")
    if len(names) < 2:
        raise DataError(f"class set {spec!r} needs at least two classes")
    return names
