"""Errors that the CLI turns into one clear line instead of a traceback, and the words for a
missing optional extra (the same in the CLI and in Python calls)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path


class EmolensError(Exception):
    """Base class: a problem with the user's input or environment, with a message that names it."""


class DataError(EmolensError):
    """A data set file, row or field is missing or malformed."""


class ModelError(EmolensError):
    """An unknown model, a weights file that fails its checksum, or a class set mismatch."""


class MissingExtra(EmolensError, ModuleNotFoundError):
    """An optional package is not installed: the message names the extra that installs it and the
    pip command (``... needs emolens[train]: pip install ...``). Also a ModuleNotFoundError, for
    code that catches that."""


#: The importable packages each extra installs (see pyproject.toml); a missing one means the extra is missing.
EXTRA_MODULES = {
    "train": ("torch", "lightning", "safetensors", "sklearn", "imblearn", "matplotlib", "onnx", "cleanlab", "imagehash"),
    "serve": ("fastapi", "uvicorn", "multipart", "websockets", "fastapi_offline"),
    "zoo": ("timm", "huggingface_hub"),
    "plot": ("matplotlib",),
    "detectors": ("yuface",),
    # `emolens batch` on Dask (docs/cluster.md): the futures API and the Parquet writer.
    "cluster": ("distributed", "dask", "pyarrow"),
}


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # a blocked or half-removed package
        return False


def extra_of_module(module: str | None) -> str | None:
    """The extra that installs the (top-level) package ``module``; train first (it has the most)."""
    top = (module or "").split(".")[0]
    return next((extra for extra, mods in EXTRA_MODULES.items() if top in mods), None)


def source_checkout() -> Path | None:
    """The repository emolens runs from when it is a source checkout (``src/emolens`` with a
    pyproject.toml and constraints.txt above it), else None (an installed package)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "constraints.txt").is_file():
        return root
    return None


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``: in a source checkout the editable install with the
    pinned constraints (an unpinned install pulls a CUDA build of torch), else the package's."""
    root = source_checkout()
    if root is not None:
        return f"pip install -e '.[{extra}]' -c constraints.txt (in {root})"
    return f"pip install 'emolens[{extra}]'"


def needs_extra(what: str, extra: str) -> str:
    return f"{what} needs emolens[{extra}]: {install_hint(extra)}"


def as_missing_extra(error: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """``error`` (a package that is not installed) as the MissingExtra naming its extra, or None when
    the package is no extra's, or is installed (then the error is a bug to show as it is)."""
    extra = extra_of_module(error.name)
    if isinstance(error, MissingExtra) or extra is None or is_installed((error.name or "").split(".")[0]):
        return None
    return MissingExtra(needs_extra(f"{error.name} (for {what})", extra), name=error.name)


def names_missing_extras(fn):
    """Decorate a Python call (``emolens.train``...): a missing optional package raises the
    :class:`MissingExtra` that names its extra, as the command line says it, rather than a bare
    ModuleNotFoundError."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as e:
            missing = as_missing_extra(e, f"emolens.{fn.__name__}")
            if missing is None:
                raise
            raise missing from None

    return call
