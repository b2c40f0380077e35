"""Parsed arrays cached in the user's cache directory, keyed by the source file's hash.

Never inside the project: data and anything derived from it stays out of the repository.
Set ``EMOLENS_CACHE_DIR`` to move the cache, or ``EMOLENS_NO_CACHE=1`` to turn it off.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..files import atomic_path, cache_dir, sha256_of

CACHE_VERSION = "1"


def file_hash(*paths: Path) -> str:
    return sha256_of(*paths, salt=CACHE_VERSION.encode())[:32]


def load(kind: str, key: str) -> dict[str, np.ndarray] | None:
    if os.environ.get("EMOLENS_NO_CACHE"):
        return None
    path = cache_dir() / f"{kind}-{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None  # a damaged cache entry is simply rebuilt


def save(kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
    if os.environ.get("EMOLENS_NO_CACHE"):
        return
    folder = cache_dir()
    try:
        with atomic_path(folder / f"{kind}-{key}.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError:
        pass  # a read-only cache directory only costs speed
