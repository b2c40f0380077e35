"""Files, written so that a kill never leaves half of one: atomic writes of bytes, figures and
checkpoints, the sha256 of a file, and the user's cache folder.

Every write goes to a temporary file in the destination's folder and is renamed over the final
name only when complete (``os.replace`` is atomic on one file system), so a reader sees the old
file or the new one, never a torn one. The cache lives in the user's cache directory, never in
the project: data and anything derived from it stays out of the repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import EmolensError


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without an exception, deleted otherwise. Its suffix is ``path``'s, so writers that pick a
    format by suffix (figures, videos) still do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parents created)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically: a half-written PNG never replaces a good one."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)


def is_partial_write(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_path` write a kill interrupted."""
    return path.name.startswith(".") and ".tmp" in path.name


def sha256_of(*paths: str | Path, salt: bytes = b"") -> str:
    """The sha256 (hex) of the files' bytes, in order, after ``salt``."""
    h = hashlib.sha256(salt)
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _identity(path: str | Path) -> tuple[int, int] | None:
    """The file behind ``path`` (device and inode: the same for a link or another spelling), or None.
    ``..`` is taken after the links are followed, as the writer will (``new/../x`` is ``x``)."""
    try:
        st = os.stat(Path(path).resolve())
    except (OSError, ValueError, RuntimeError):
        return None
    return st.st_dev, st.st_ino


def refuse_overwriting(outputs: Iterable[str | Path], inputs: Iterable[str | Path], option: str) -> None:
    """Raise an EmolensError naming the first of ``outputs`` that is one of the ``inputs`` files (the
    same file under another spelling, a link or a hard link too): no command writes over what it reads.
    ``option``: what the user changes to fix it (``--save-dir``, ``--out``...)."""
    ids = {}
    for path in inputs:
        ids.setdefault(_identity(path), path)
    ids.pop(None, None)
    for out in outputs:
        src = ids.get(_identity(out))
        if src is not None:
            raise EmolensError(f"{out}: is the input {src}; outputs never overwrite inputs (choose another {option})")


def refuse_inside(folder: str | Path, inputs: Iterable[str | Path], option: str, why: str) -> None:
    """Raise an EmolensError when the output ``folder`` is one of the input folders or lies inside one
    (``why``: what would go wrong, e.g. the next run would read the outputs as inputs)."""
    target = Path(folder).resolve()
    for src in map(Path, inputs):
        if src.is_dir() and (target == src.resolve() or src.resolve() in target.parents):
            raise EmolensError(f"{option} {folder} lies inside the input folder {src}: {why}")


def cache_dir() -> Path:
    """The user's cache folder for emolens: ``EMOLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/emolens``
    or ``~/.cache/emolens``."""
    env = os.environ.get("EMOLENS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emolens"
