"""List the imports between emolens packages and fail on a cycle or an import against the layer order.

    python scripts/check_layers.py            # table of package -> package imports, then the verdict

The order (docs/architecture.md): a package may import the ones before it, never one after it.
Top-level modules (``errors``, ``classes``) are the floor every package may use; ``api`` and
``cli`` sit above the packages they drive. Reads the source with :mod:`ast` (nothing is imported),
counting imports inside functions too: a lazy import is still a dependency.
Exit status 1 when an import breaks the order or two packages import each other.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "emolens"

#: Bottom to top. Each entry may import the entries before it (and itself).
LAYERS = (
    "errors", "version", "classes",     # the floor: errors, the version, class sets,
    "text",                             # and shared wording (plurals, durations)
    "files",                            # atomic writes, hashes, the cache folder
    "weights",                          # the bundled models' files (data, and where they lie)
    "data",                             # readers, splits, class sets, balancing
    "models",                           # networks, registry, specs, weights, ensembles' networks
    "runtime",                          # torch / ONNX Runtime classifiers behind one interface
    "vision",                           # images, detectors, alignment, pipeline, tracking, drawing, video
    "assets",                           # demo images and test frames made from them
    "evaluation",                       # a classifier on a data set -> metrics; calibration, ensemble tuning
    "engine",                           # training, averaging, distillation, cards
    "experiments",                      # experiment files: schema and grid, runs, tables
    "tasks",                            # the facade's jobs: train, evaluate, export, average, ...
    "api",                              # the facade: Recognizer
    "cluster",                          # `emolens batch`: a corpus -> a Parquet dataset, on Dask
    "serve",                            # the web service (drives the facade)
    "cli",                              # the command line (parses, calls the facade)
)
RANK = {name: i for i, name in enumerate(LAYERS)}


def unit_of(module: str) -> str | None:
    """``emolens.vision.draw`` -> ``vision``; ``emolens.cli.data`` -> ``cli``; outside emolens -> None.

    The folders are read as they are: a module belongs to the package (folder) it lies in.
    """
    parts = module.split(".")
    if parts[0] != "emolens" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the emolens modules ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("emolens"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("emolens"):
                if node.module is None or target == "emolens":
                    found.update(f"{target}.{a.name}" for a in node.names)
                else:
                    found.add(target)
    return found


def edges() -> dict[tuple[str, str], list[str]]:
    """(from unit, to unit) -> the modules that make that import, for units that differ."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        source = unit_of(module_name(path)) or "emolens"
        for target in imports_of(path):
            dest = unit_of(target)
            if dest and dest != source and source in RANK:
                out[(source, dest)].append(module_name(path))
    return out


def main() -> int:
    found = edges()
    problems = []
    print(f"{'from':<12} {'to':<12} modules")
    for (src, dst), modules in sorted(found.items(), key=lambda kv: (RANK.get(kv[0][0], 99), kv[0][1])):
        verdict = ""
        if dst not in RANK:
            verdict = "  <- unknown package: add it to LAYERS"
        elif RANK[dst] > RANK[src]:
            verdict = "  <- AGAINST THE ORDER"
        if (dst, src) in found:
            verdict += "  <- CYCLE"
        if verdict:
            problems.append(f"{src} -> {dst}: {', '.join(sorted(set(modules)))}{verdict}")
        print(f"{src:<12} {dst:<12} {', '.join(sorted(set(modules)))}{verdict}")
    print()
    print("layer order: " + " -> ".join(LAYERS))
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print("no cycles between packages, no import against the order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
