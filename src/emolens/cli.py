"""The ``emolens`` command. Each package adds its sub-commands through a ``register(subparsers)``
function in its own ``cli`` module; every sub-command is a thin layer over the Python API."""

from __future__ import annotations

import argparse
import importlib
import sys

import yaml

from .errors import EmolensError

#: Modules whose ``register(subparsers)`` adds sub-commands, in help order.
COMMAND_MODULES = (
    "emolens.vision.cli",     # predict, video, webcam
    "emolens.engine.cli",     # train, evaluate, models, export
    "emolens.data.cli",       # data stats
    "emolens.serve.cli",      # serve
    "emolens.experiments.cli",  # experiment
    "emolens.models.cli",     # ensemble
)


def parse_value(text: str):
    """``3`` -> 3, ``[32, 64]`` -> list, ``true`` -> True: YAML scalars, so flags and configs agree."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def key_values(pairs: list[str] | None, flag: str) -> dict:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b.c": "x"}``; a pair without ``=`` is an error naming the flag."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise EmolensError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emolens", description="Facial expression recognition toolkit")
    p.add_argument("--version", action="version", version=f"emolens {__import__('emolens').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("emolens"):
                continue  # a part not built yet
            raise
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EmolensError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emolens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
