"""Decode uploaded bytes into an RGB uint8 array, telling "not an image" (415) from "a broken one" (422).

The format is decided from the bytes (never the file name or the client's Content-Type); the
decoding itself is the CLI's (:func:`emolens.vision.images.decode_image`): EXIF orientation
applied, first frame of a GIF, 16-bit, palette, CMYK and alpha images converted the same way.
Error messages are for the client: no object reprs, memory addresses or server paths.
"""

from __future__ import annotations

import re

import numpy as np

#: Formats accepted by the service, by their magic bytes.
ACCEPTED = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
ACCEPTED_TEXT = "a JPEG, PNG, WebP, GIF, TIFF or BMP image"

_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


class ImageRejected(Exception):
    """An upload that cannot be used; ``status`` is the HTTP status, ``code`` a stable machine name."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sniff_format(data: bytes) -> str | None:
    """One of :data:`ACCEPTED` from the first bytes, or None (whatever the client's Content-Type says)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")           # <_io.BytesIO object at 0x7f...>
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_PATH = re.compile(r"(?<![\w/.:])(?:/[^\s/'\"<>:]+){2,}/?|\b[A-Za-z]:\\[^\s'\"<>]+")


def public_message(text: str) -> str:
    """``text`` without object reprs, memory addresses or file-system paths (safe to send to a client)."""
    text = _REPR.sub("the upload", text)
    text = _ADDRESS.sub("…", text)
    return _PATH.sub("…", text)


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """HxWx3 RGB uint8 from the bytes of an accepted format, or :class:`ImageRejected`."""
    from ..vision.errors import ImageError
    from ..vision.images import ImageTooLarge
    from ..vision.images import decode_image as decode

    if not data:
        raise ImageRejected(422, "empty_file", "the uploaded file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(415, "unsupported_media_type", f"not {ACCEPTED_TEXT} (checked by content, not by name)")
    try:
        arr = decode(data, f"{fmt} image", limit=max_pixels)
    except ImageTooLarge:
        raise ImageRejected(413, "image_too_large", f"{fmt} image is over the limit of {max_pixels:,} pixels") from None
    except ImageError as e:
        raise ImageRejected(422, "corrupt_image", public_message(str(e))) from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageRejected(422, "corrupt_image", f"decoded {fmt} image has an unusable shape {arr.shape}")
    return np.ascontiguousarray(arr)
