"""Counts per split and class as a plain-text table."""

from __future__ import annotations


def format_stats(summary: dict) -> str:
    classes = summary["classes"]
    width = max(8, *(len(c) for c in classes))
    head = f"{'split':<12}" + "".join(f"{c:>{width + 1}}" for c in classes) + f"{'total':>9}"
    lines = [f"source: {summary['source']}", head, "-" * len(head)]
    for split, info in summary["splits"].items():
        cells = "".join(f"{info['per_class'][c]:>{width + 1},}" for c in classes)
        lines.append(f"{split:<12}{cells}{info['total']:>9,}")
    if len(summary["splits"]) != 1:              # one split (a flat folder's is called "all") is its own total
        cells = "".join(f"{sum(i['per_class'][c] for i in summary['splits'].values()):>{width + 1},}" for c in classes)
        lines.append(f"{'all':<12}{cells}{summary['total']:>9,}")
    dropped = {k: v for k, v in summary.get("dropped", {}).items()}
    if dropped:
        lines.append("dropped rows: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items())
                     + f" (total {sum(dropped.values()):,})")
    return "\n".join(lines)
