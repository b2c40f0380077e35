"""Wording every layer shares: counts that read right in the singular, durations in a unit that fits."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 track``, ``2 tracks``, ``1,234 frames`` (``words``: the plural when not ``word + "s"``)."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def duration(seconds: float) -> str:
    """``42 s``, ``2.5 min``, ``1.73 h``: a wall time in the unit that shows it (never ``0.00 h``)."""
    seconds = max(0.0, float(seconds or 0))
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
