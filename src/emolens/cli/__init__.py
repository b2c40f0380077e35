"""The ``emolens`` command. The list of sub-commands is static (:data:`COMMANDS`): each is always in
``emolens --help``, whatever is installed. Each module of this package (``cli.vision``,
``cli.engine``, ``cli.data``, ...) adds its sub-commands' flags through a ``register(subparsers)``
function, which imports nothing heavy; every
sub-command is a thin layer over the Python API. A command whose extra is not installed (torch
for ``train``, FastAPI for ``serve``...) says which one to install, in one line, and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

import yaml

from ..errors import EXTRA_MODULES, EmolensError, MissingExtra, as_missing_extra, is_installed, needs_extra


@dataclass(frozen=True)
class Command:
    """A sub-command: the module whose ``register(subparsers)`` adds it, and the extra it needs
    (``pip install 'emolens[EXTRA]'``; None: the base install runs it)."""

    name: str
    module: str
    extra: str | None = None


#: Every sub-command, in help order.
COMMANDS = (
    Command("predict", "emolens.cli.vision"),
    Command("video", "emolens.cli.vision"),
    Command("webcam", "emolens.cli.vision"),
    Command("detectors", "emolens.cli.vision"),
    Command("batch", "emolens.cli.batch", "cluster"),
    Command("train", "emolens.cli.engine", "train"),
    Command("evaluate", "emolens.cli.engine", "train"),
    Command("calibrate", "emolens.cli.engine", "train"),
    Command("retrain-head", "emolens.cli.engine", "train"),
    Command("average", "emolens.cli.engine", "train"),
    Command("models", "emolens.cli.engine"),
    Command("export", "emolens.cli.engine"),          # a bundled model's shipped ONNX file: no torch
    Command("data", "emolens.cli.data"),
    Command("crop", "emolens.cli.data"),
    Command("serve", "emolens.cli.serve", "serve"),
    Command("experiment", "emolens.cli.experiments", "train"),
    Command("ensemble", "emolens.cli.models", "train"),
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


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, said once: added as ``(default: X)`` unless the
    help already says one, and left out when there is none to say (None, a flag that is off)."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


def _finish(parser: argparse.ArgumentParser) -> None:
    """Give every (sub-)command the formatter above and, when it has none, its one-line help as
    its description (so that ``emolens COMMAND --help`` says what COMMAND does)."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _finish(sub)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command of :data:`COMMANDS`; registering them imports no torch."""
    p = argparse.ArgumentParser(prog="emolens", description="Facial expression recognition toolkit")
    p.add_argument("--version", action="version", version=f"emolens {__import__('emolens').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in dict.fromkeys(c.module for c in COMMANDS):   # each module once, in help order
        importlib.import_module(name).register(sub)
    _finish(p)
    return p


def missing_extra(command: str) -> str | None:
    """The extra ``command`` needs and lacks (the first one of its packages not installed), or None."""
    extra = next((c.extra for c in COMMANDS if c.name == command), None)
    if extra and not all(is_installed(m) for m in EXTRA_MODULES[extra]):
        return extra
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        extra = missing_extra(args.command)
        if extra:
            raise MissingExtra(needs_extra(f"`emolens {args.command}`", extra))
        return int(args.func(args) or 0)
    except EmolensError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:   # an optional package an option of this command needs
        missing = as_missing_extra(e, f"`emolens {args.command}`")
        if missing is None:
            raise
        print(f"emolens: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emolens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
