"""Text files of data sets (CSV tables, vote files, exclusion lists), plain or gzip-compressed.

:func:`open_text` yields lines; a file whose bytes are not UTF-8 text (a photo or another binary
saved as ``.csv``, a UTF-16 export) raises one :class:`DataError` naming it, wherever in the file
the bad bytes are, instead of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from ..errors import DataError


class TextLines:
    """The lines of an open text file (an iterator for ``csv.reader``, and a context manager)."""

    def __init__(self, handle: io.TextIOBase, path: Path):
        self.handle, self.path = handle, path

    def __iter__(self) -> TextLines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.handle)
        except UnicodeDecodeError:
            raise self.not_text() from None
        if "\x00" in line:
            raise self.not_text()
        return line

    def not_text(self) -> DataError:
        return DataError(f"{self.path}: not a text file (its bytes are not UTF-8 text: a binary file named .csv?)")

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> TextLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_text(path: str | Path) -> TextLines:
    """Open a plain or gzip-compressed text file (decided by its magic bytes, not its name).

    A UTF-8 byte-order mark (as spreadsheet programs write) is dropped; CRLF line ends are read
    like LF ones by the csv module.
    """
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return TextLines(io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline=""), path)
    return TextLines(open(path, encoding="utf-8-sig", newline=""), path)
