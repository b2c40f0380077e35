"""Decode uploaded bytes into an RGB uint8 array, telling "not an image" (415) from "a broken one" (422)."""

from __future__ import annotations

import io
import warnings

import numpy as np

#: Formats accepted by the service, by their magic bytes.
ACCEPTED = ("JPEG", "PNG", "WEBP")


class ImageRejected(Exception):
    """An upload that cannot be used; ``status`` is the HTTP status, ``code`` a stable machine name."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sniff_format(data: bytes) -> str | None:
    """``JPEG``/``PNG``/``WEBP`` from the first bytes, or None (whatever the client's Content-Type says)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """HxWx3 RGB uint8 from JPEG/PNG/WebP bytes; EXIF orientation applied (phone photos stand upright)."""
    from PIL import Image, ImageOps

    from ..vision.images import pil_to_rgb

    if not data:
        raise ImageRejected(422, "empty_file", "the uploaded file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(415, "unsupported_media_type",
                            "not a JPEG, PNG or WebP image (checked by content, not by name)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageRejected(413, "image_too_large",
                                        f"image is {w}x{h} pixels; the limit is {max_pixels} pixels")
                im.load()
                im = ImageOps.exif_transpose(im) or im
                # the pipeline's own conversion: 16-bit, CMYK, palette, alpha (onto white)...
                arr = pil_to_rgb(im)
    except ImageRejected:
        raise
    except MemoryError:
        raise ImageRejected(413, "image_too_large", "image too large to decode") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(413, "image_too_large", f"image exceeds the limit of {max_pixels} pixels") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
        raise ImageRejected(422, "corrupt_image", f"{fmt} image could not be decoded: {e}") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageRejected(422, "corrupt_image", f"decoded {fmt} image has an unusable shape {arr.shape}")
    return np.ascontiguousarray(arr)
