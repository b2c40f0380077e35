"""Reading images: every mode we accept, and every kind of bad file refused with a clear error."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emolens.assets import ASTRONAUT
from emolens.errors import EmolensError
from emolens.vision.errors import ImageError
from emolens.vision.images import array_to_rgb, decode_image, iter_image_files, load_image, read_image


def test_astronaut_reads_as_rgb_uint8():
    rgb = read_image(ASTRONAUT)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert issubclass(ImageError, EmolensError)


def test_grey_rgba_palette_and_16_bit_files(tmp_path):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))              # (8, 64)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    out = read_image(tmp_path / "grey.png")
    assert out.shape == (8, 64, 3) and (out[..., 0] == grey).all() and (out[..., 2] == grey).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :2, 3] = 255                                                      # left half opaque red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[0, 3]) == (255, 255, 255)                                # transparent -> white

    wide = (np.arange(64, dtype=np.uint16) * 1024).reshape(8, 8)              # 0 .. 64512
    Image.fromarray(wide).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[-1, -1, 0] == 64512 * 255 // 65535

    Image.fromarray(grey).convert("P").save(tmp_path / "pal.gif")
    assert read_image(tmp_path / "pal.gif").shape == (8, 64, 3)


def test_16_bit_colour_png_written_by_opencv(tmp_path):
    import cv2

    img = np.zeros((6, 6, 3), np.uint16)
    img[..., 2] = 65535                                                       # red in BGR order
    cv2.imwrite(str(tmp_path / "c16.png"), img)
    out = read_image(tmp_path / "c16.png")
    assert out.shape == (6, 6, 3) and out[0, 0, 0] == 255 and out[0, 0, 1] == 0


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6                                                          # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (40, 20, 3)


@pytest.mark.parametrize("content, message", [
    (b"", r"empty file \(0 bytes\)"),
    (b"hello, not an image", "not an image"),
])
def test_bad_bytes_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_jpeg_and_png(tmp_path):
    data = ASTRONAUT.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "cut.jpg")
    Image.open(ASTRONAUT).save(tmp_path / "full.png")
    png = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (and no pixel data): what a decompression bomb looks like up front."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))                          # 900 Mpx claimed, 100 bytes on disk
    with pytest.raises(ImageError, match="bomb") as info:
        read_image(path)
    assert "bomb.png" in str(info.value)
    monkeypatch.setenv("EMOLENS_MAX_PIXELS", "10000")
    with pytest.raises(ImageError, match="over the limit of 10,000"):
        read_image(ASTRONAUT)


def test_arrays_of_any_dtype_and_layout():
    grey16 = np.full((5, 7), 65535, np.uint16)
    assert array_to_rgb(grey16).shape == (5, 7, 3) and array_to_rgb(grey16).max() == 255
    unit = np.full((3, 3, 3), 0.5, np.float32)
    assert array_to_rgb(unit)[0, 0, 0] == 128
    assert array_to_rgb(np.ones((2, 2), bool))[0, 0, 0] == 255
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255                                                          # blue in OpenCV order
    assert tuple(array_to_rgb(bgr, bgr=True)[0, 0]) == (0, 0, 255)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert array_to_rgb(rgba).shape == (2, 2, 3)
    assert array_to_rgb(np.zeros((2, 2, 1), np.uint8)).shape == (2, 2, 3)
    for bad in (np.zeros((2, 2, 2)), np.zeros((0, 4, 3), np.uint8), np.zeros(5)):
        with pytest.raises(ImageError):
            array_to_rgb(bad)


def test_load_image_accepts_path_bytes_pil_and_array():
    data = ASTRONAUT.read_bytes()
    a, src = load_image(str(ASTRONAUT))
    b, _ = load_image(data)
    c, _ = load_image(Image.open(ASTRONAUT))
    d, _ = load_image(a[..., ::-1].copy(), bgr=True)
    assert src.endswith("astronaut.jpg")
    assert (a == b).all() and (a == c).all() and (a == d).all()
    assert (decode_image(data) == a).all()
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        load_image(3)


def test_folder_walk_is_recursive_and_sorted(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.PNG", "a/notes.txt", "a/.hidden.png", "z.webp"):
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p, _ in iter_image_files([tmp_path / "a", tmp_path / "z.webp"])]
    assert found == ["a/b/y.PNG", "a/x.jpg", "z.webp"]
