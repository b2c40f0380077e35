"""What ``emolens batch`` reads: SOURCE arguments (files, folders, quoted globs, fsspec URLs) and
``--list`` files, expanded into one sorted list of inputs, each an image or a video by its file
name's ending; and the bytes or file object of one input, local or behind an fsspec URL.

Local paths keep the spelling they are given in (folders walked as ``emolens predict`` walks
them), so that the ``source`` column equals what ``predict`` and ``video`` report. A URL
(``s3://bucket/clips/``, ``gs://...``, ``file:///...``) goes through :mod:`fsspec` with the
``storage_options`` given (``--storage-option K=V``); its filesystem package (s3fs, gcsfs...)
must be installed where the job runs.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..errors import EmolensError
from ..vision.errors import ImageError
from ..vision.images import IMAGE_EXTENSIONS
from ..vision.video import VIDEO_EXTENSIONS

IMAGE, VIDEO, UNKNOWN = "image", "video", "unknown"


@dataclass(frozen=True, order=True)
class Input:
    source: str          # the local path as given, or the URL
    kind: str            # image, video, or unknown (a file named directly whose ending is neither)


def kind_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return IMAGE if suffix in IMAGE_EXTENSIONS else VIDEO if suffix in VIDEO_EXTENSIONS else UNKNOWN


def is_url(source: str) -> bool:
    return "://" in source


def read_list(path: str | Path, storage_options: dict | None = None) -> list[str]:
    """The entries of a ``--list`` file: one path, folder, glob or URL a line; blank lines and
    lines starting with ``#`` are skipped."""
    try:
        if is_url(str(path)):
            import fsspec

            with fsspec.open(str(path), "rt", encoding="utf-8", **(storage_options or {})) as f:
                text = f.read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EmolensError(f"--list {path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def expand_sources(sources: Iterable[str], list_file: str | Path | None = None,
                   storage_options: dict | None = None) -> list[Input]:
    """Every input the arguments name, sorted, each once. Folders are walked recursively for files
    ending in an image or video suffix (hidden files skipped); a file named directly is kept
    whatever its ending (one that is neither image nor video gets an error row), and so is a
    local path that does not exist (its row says so)."""
    names = [str(s) for s in sources]
    if list_file is not None:
        names += read_list(list_file, storage_options)
    found: set[Input] = set()
    for name in names:
        found.update(_expand_url(name, storage_options or {}) if is_url(name) else _expand_local(name))
    return sorted(found)


def _walked(name: str) -> bool:
    """A file met in a folder walk or a glob: an image or a video, not hidden."""
    return kind_of(name) != UNKNOWN and not PurePosixPath(name).name.startswith(".")


def _expand_local(name: str) -> Iterable[Input]:
    path = Path(name)
    if not path.exists() and glob.has_magic(name):
        matches = sorted(glob.glob(name, recursive=True))
        for match in matches:
            if Path(match).is_dir():
                yield from _expand_local(match)
            elif _walked(match):
                yield Input(match, kind_of(match))
        return
    if path.is_dir():
        for f in sorted(path.glob("**/*")):
            if (f.is_file() or f.is_symlink()) and _walked(f.name):
                yield Input(str(f), kind_of(f.name))
        return
    yield Input(str(path), kind_of(path.name))       # a file, or a missing path: its row says why


def _expand_url(url: str, storage_options: dict) -> Iterable[Input]:
    fs, root = _filesystem(url, storage_options)
    try:
        if glob.has_magic(root):
            paths = [p for p in fs.glob(root) if not fs.isdir(p)]
        elif fs.isdir(root):
            paths = fs.find(root)
        else:
            yield Input(url, kind_of(url))             # a file, or a missing one: its row says why
            return
    except OSError as e:
        raise EmolensError(f"{url}: cannot be listed ({e})") from None
    for path in paths:
        if _walked(path):
            yield Input(fs.unstrip_protocol(path), kind_of(path))


def _filesystem(url: str, storage_options: dict):
    from ..errors import MissingExtra

    try:
        import fsspec

        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as e:      # fsspec names the package its protocol needs (s3fs, gcsfs...)
        raise MissingExtra(f"{url}: {e}") from None
    except ValueError as e:
        raise EmolensError(f"{url}: {e}") from None


def read_bytes(source: str, storage_options: dict | None = None) -> bytes:
    """The bytes of an input behind a URL, or an ImageError naming it."""
    import fsspec

    try:
        with fsspec.open(source, "rb", **(storage_options or {})) as f:
            return f.read()
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except (OSError, ValueError) as e:
        raise ImageError(f"{source}: cannot be read ({e})") from None


def open_file(source: str, storage_options: dict | None = None):
    """A seekable binary file object for an input behind a URL (PyAV reads videos from it)."""
    import fsspec

    return fsspec.open(source, "rb", **(storage_options or {})).open()
