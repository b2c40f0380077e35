"""Models trained by emolens and shipped inside the package; each has a model card (NAME.md)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

#: The model the recognition pipeline uses when none is named (see README, "Default model").
DEFAULT_MODEL = "ferplus"


def bundled_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.safetensors"))


def bundled_path(name: str) -> Path | None:
    path = HERE / f"{name}.safetensors"
    return path if path.exists() else None
