"""Exact and near-duplicate faces by perceptual hash (``imagehash``'s DCT pHash, 64 bits).

Two faces whose pHashes differ in at most ``max_distance`` of 64 bits are near duplicates (the
same photo re-encoded, shifted a little in brightness, lightly noised); pixel-identical faces are
exact duplicates. All pairs are compared (XOR and bit count in blocks), which for the 32,298 rows
of FER-2013 is about 5 x 10^8 comparisons: a few seconds, no index needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Default largest Hamming distance (of 64 bits) between the pHashes of two near duplicates.
DEFAULT_MAX_DISTANCE = 4
BLOCK = 512


@dataclass(frozen=True)
class DuplicatePair:
    """Rows ``first`` < ``second`` (dataset positions) whose faces are duplicates."""

    first: int
    second: int
    distance: int          # Hamming distance of the two pHashes, 0..64
    exact: bool            # the pixels are identical


def perceptual_hashes(images: np.ndarray, progress: bool = False) -> np.ndarray:
    """The 64-bit DCT pHash of every grey uint8 face (N, H, W), as (N,) uint64 (progress: rate and ETA)."""
    import sys

    import imagehash
    from PIL import Image
    from tqdm import tqdm

    weights = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)
    out = np.empty(len(images), dtype=np.uint64)
    faces = tqdm(images, desc="audit: pHash", unit="face", disable=not progress, file=sys.stderr, mininterval=2)
    for i, face in enumerate(faces):
        bits = imagehash.phash(Image.fromarray(face)).hash.reshape(-1).astype(np.uint64)
        out[i] = np.bitwise_or.reduce(bits * weights)
    return out


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy >= 2 has np.bitwise_count; older ones count by byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_BITS[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


def duplicate_pairs(images: np.ndarray, hashes: np.ndarray, max_distance: int = DEFAULT_MAX_DISTANCE) -> list[DuplicatePair]:
    """Every pair of rows whose pHashes lie within ``max_distance`` bits, marked exact when the pixels match."""
    pairs: list[DuplicatePair] = []
    n = len(hashes)
    for start in range(0, n, BLOCK):
        block = hashes[start:start + BLOCK]
        dist = _popcount(block[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(dist <= max_distance)
        rows = rows + start
        upper = cols > rows
        for i, j in zip(rows[upper], cols[upper]):
            d = int(dist[i - start, j])
            pairs.append(DuplicatePair(int(i), int(j), d, bool(d == 0 and np.array_equal(images[i], images[j]))))
    return pairs


def has_twin(images: np.ndarray, others: np.ndarray, max_distance: int = DEFAULT_MAX_DISTANCE,
             progress: bool = False) -> np.ndarray:
    """(N,) bool: which of ``images`` has a near or exact duplicate among ``others`` (pHashes within
    ``max_distance`` bits), the audit's cross-split pairs seen from one side: a validation face
    with a Training twin was, in effect, trained on."""
    if len(images) == 0 or len(others) == 0:
        return np.zeros(len(images), dtype=bool)
    ours = perceptual_hashes(images, progress=progress)
    theirs = perceptual_hashes(others, progress=progress)
    out = np.zeros(len(ours), dtype=bool)
    for start in range(0, len(ours), BLOCK):
        block = ours[start:start + BLOCK]
        out[start:start + BLOCK] = (_popcount(block[:, None] ^ theirs[None, :]) <= max_distance).any(axis=1)
    return out
