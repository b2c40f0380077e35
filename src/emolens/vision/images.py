"""Read any image the pipeline is given into one form: RGB uint8 (H, W, 3), C-contiguous.

Files and bytes are decoded with Pillow (EXIF orientation applied, first frame of an animation);
arrays and PIL images are converted. Grey, grey+alpha, palette, RGBA, CMYK, 16-bit and float
images are all accepted. Empty, damaged, truncated and non-image files, and images over the
pixel limit (decompression bombs), raise :class:`ImageError` naming the file.
"""

from __future__ import annotations

import errno
import io
import os
import warnings
from pathlib import Path

import numpy as np

from .errors import ImageError

#: File name endings that a folder walk treats as images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm", ".pnm"})

#: Largest image decoded, in pixels (width x height); ``EMOLENS_MAX_PIXELS`` overrides it.
DEFAULT_MAX_PIXELS = 100_000_000


class ImageTooLarge(ImageError):
    """An image over the pixel limit (a decompression bomb?); the web service answers it with 413."""


def max_pixels() -> int:
    value = os.environ.get("EMOLENS_MAX_PIXELS", "")
    return int(value) if value.strip().isdigit() else DEFAULT_MAX_PIXELS


def read_image(path: str | Path, limit: int | None = None) -> np.ndarray:
    """The image file at ``path`` as RGB uint8 (H, W, 3)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError(f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist)") from None
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageError(f"{path}: symbolic link loop") from None
        raise ImageError(f"{path}: cannot be read ({e.strerror or e})") from None
    return decode_image(data, str(path), limit)


def decode_image(data: bytes, name: str = "image", limit: int | None = None) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) as RGB uint8 (H, W, 3); ``name`` is used in errors."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    limit = limit or max_pixels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))          # reads the header only
        except UnidentifiedImageError:
            raise ImageError(f"{name}: cannot be identified as an image (not an image, damaged, or a format "
                             "Pillow cannot read)") from None
        except Image.DecompressionBombError:
            raise ImageTooLarge(f"{name}: refused, too many pixels for a photo (a decompression bomb?)") from None
        except Exception as e:  # noqa: BLE001  (any decoder failure on a damaged header)
            raise ImageError(f"{name}: damaged image header ({e})") from None
        width, height = im.size
        if width * height > limit:
            raise ImageTooLarge(f"{name}: refused, {width}x{height} = {width * height:,} pixels is over the limit "
                             f"of {limit:,} (a decompression bomb?); set EMOLENS_MAX_PIXELS to allow more")
        if width == 0 or height == 0:
            raise ImageError(f"{name}: image has no pixels ({width}x{height})")
        try:
            im.load()
            im = ImageOps.exif_transpose(im) or im
        except Exception as e:  # noqa: BLE001  (Pillow raises OSError, SyntaxError, ValueError... on bad data)
            raise ImageError(f"{name}: damaged or truncated image ({e})") from None
    return pil_to_rgb(im)


def pil_to_rgb(im) -> np.ndarray:
    """A PIL image in any mode as RGB uint8; transparency is composited onto white."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I") or mode == "F":            # 16/32-bit integer or float grey
        return array_to_rgb(np.asarray(im))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.ascontiguousarray(np.asarray(Image.alpha_composite(white, rgba).convert("RGB")))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def array_to_rgb(a: np.ndarray, bgr: bool = False) -> np.ndarray:
    """An array image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of any numeric dtype as RGB uint8.

    uint16 is scaled by 1/257; floats in [0, 1] by 255; other ranges are min-max scaled.
    ``bgr``: the colour channels are in OpenCV's order. A 4th channel (alpha) is dropped.
    """
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"image array of shape {a.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"image array of shape {a.shape} has no pixels")
    a = _to_uint8(a)
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    a = a[..., :3]
    if bgr:
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"image array of dtype {a.dtype}: expected integers or floats")
    f = a.astype(np.float64)
    if not np.isfinite(f).all():
        f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(f.min()), float(f.max())
    if np.issubdtype(a.dtype, np.floating) and lo >= 0 and hi <= 1:
        f = f * 255
    elif lo < 0 or hi > 255:
        if hi <= 65535 and lo >= 0:
            f = f / 257                                # 16-bit data in a wider integer type
        else:
            f = (f - lo) / max(hi - lo, 1e-12) * 255
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def load_image(image, bgr: bool = False) -> tuple[np.ndarray, str]:
    """Any supported input (path, bytes, array, PIL image) as (RGB uint8 array, source name).

    ``bgr`` applies to arrays only: set it for frames from OpenCV.
    """
    if isinstance(image, (str, Path)):
        return read_image(image), str(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), "bytes"), "bytes"
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, bgr=bgr), "array"
    if hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "convert"):  # a PIL image
        return pil_to_rgb(image), getattr(image, "filename", "") or "PIL image"
    raise ImageError(f"cannot read an image from a {type(image).__name__}: give a path, bytes, a numpy "
                     "array or a PIL image")


def iter_image_files(paths, recursive: bool = True):
    """Image files named in ``paths``, folders walked (recursively), in sorted order.

    Yields (file path, root) where root is the folder argument it was found under (None for a
    file named directly), so callers can mirror the tree. A path that does not exist but is a
    pattern (``dir/*.jpg``, ``photos/**/*.png``: quoted, or from a shell that does not expand
    it) stands for the image files and folders it matches, in sorted order.
    """
    import glob

    for p in map(Path, paths):
        if not p.exists() and glob.has_magic(str(p)):
            matches = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            found = [m for m in matches if m.is_dir() or (m.suffix.lower() in IMAGE_EXTENSIONS
                                                           and not m.name.startswith("."))]
            yield from iter_image_files(found, recursive) if found else [(p, None)]   # none: "no such file"
            continue
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            for f in sorted(p.glob(pattern)):
                # a broken or looping symbolic link is yielded too: reading it names the problem
                if (f.is_file() or f.is_symlink()) and f.suffix.lower() in IMAGE_EXTENSIONS \
                        and not f.name.startswith("."):
                    yield f, p
        else:
            yield p, None   # a file, or a missing path: reading it reports the problem
