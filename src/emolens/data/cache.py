"""Parsed arrays cached in the user's cache directory, keyed by the source file's hash.

Never inside the project: data and anything derived from it stays out of the repository.
Set ``EMOLENS_CACHE_DIR`` to move the cache, or ``EMOLENS_NO_CACHE=1`` to turn it off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

CACHE_VERSION = "1"


def cache_dir() -> Path:
    env = os.environ.get("EMOLENS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emolens"


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


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
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, folder / f"{kind}-{key}.npz")
    except OSError:
        pass  # a read-only cache directory only costs speed
