"""Every format and failure faceprint promises, built from a real photo with Pillow."""

from __future__ import annotations

import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, features

from faceprint.errors import FaceprintError, ImageError, ImageTooLargeError
from faceprint.imageio import load_image, load_reduced, save_image


def mae(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def check_rgb(a: np.ndarray) -> None:
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert a.flags.c_contiguous and a.flags.writeable


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + idat + png_chunk(b"IEND", b"")


def save(tmp_path: Path, name: str, im: Image.Image, fmt: str | None = None, **kw) -> Path:
    path = tmp_path / name
    im.save(path, fmt, **kw)
    return path


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kw, tol",
    [
        ("a.png", {}, 0),
        ("a.bmp", {}, 0),
        ("a.tiff", {}, 0),
        ("a.tif", {"compression": "tiff_lzw"}, 0),
        ("lossless.webp", {"lossless": True}, 0),
        ("lossy.webp", {"quality": 90}, 4.0),
        ("a.jpg", {"quality": 95}, 3.0),
        ("progressive.jpg", {"quality": 95, "progressive": True}, 3.0),
        ("a.ppm", {}, 0),
    ],
)
def test_rgb_formats(tmp_path, astronaut, name, kw, tol):
    path = save(tmp_path, name, Image.fromarray(astronaut), **kw)
    out = load_image(path)
    check_rgb(out)
    if tol == 0:
        np.testing.assert_array_equal(out, astronaut)
    else:
        assert mae(out, astronaut) < tol


def test_mpo_phone_jpeg_first_image(tmp_path, astronaut):
    # Many phones write MPO: a JPEG followed by more pictures. The first one is the photo.
    path = tmp_path / "phone.jpg"
    Image.fromarray(astronaut).save(path, "MPO", save_all=True, append_images=[Image.fromarray(astronaut[::-1].copy())], quality=95)
    assert mae(load_image(path), astronaut) < 3


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build has no AVIF support")
def test_avif(tmp_path, astronaut):
    assert mae(load_image(save(tmp_path, "a.avif", Image.fromarray(astronaut), quality=90)), astronaut) < 4


def test_path_kinds_and_bytes_agree(tmp_path, astronaut):
    path = save(tmp_path, "a.png", Image.fromarray(astronaut))
    for source in (str(path), path, path.read_bytes(), bytearray(path.read_bytes()), memoryview(path.read_bytes())):
        np.testing.assert_array_equal(load_image(source), astronaut)


def test_greyscale_png(tmp_path, astronaut):
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    out = load_image(save(tmp_path, "g.png", Image.fromarray(grey)))
    check_rgb(out)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_png16_grey_is_scaled_not_clipped(tmp_path, astronaut):
    grey8 = astronaut[:, :, 1]
    grey16 = grey8.astype(np.uint16) * 257
    path = save(tmp_path, "g16.png", Image.fromarray(grey16))
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    np.testing.assert_array_equal(out[:, :, 0], grey8)


def test_png16_rgb_is_scaled(tmp_path, astronaut):
    rng = np.random.default_rng(0)
    rgb16 = astronaut.astype(np.uint32) * 257 + rng.integers(0, 200, astronaut.shape)
    rgb16 = np.minimum(rgb16, 65535).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(raw_png(astronaut.shape[1], astronaut.shape[0], 16, 2, rows))
    out = load_image(path)
    expected = rgb16.astype(np.float64) * 255 / 65535
    assert np.abs(out - expected).max() <= 1.0
    assert out.max() > 250  # bright values survive: scaled, not clipped or shifted


def test_rgba_png_composited_on_white(tmp_path, astronaut):
    alpha = np.zeros(astronaut.shape[:2], np.uint8)
    alpha[:, 256:] = 255
    alpha[:100, :100] = 128
    out = load_image(save(tmp_path, "a.png", Image.fromarray(np.dstack([astronaut, alpha]))))
    check_rgb(out)
    np.testing.assert_array_equal(out[:, 256:], astronaut[:, 256:])
    assert (out[100:, 100:256] == 255).all()
    half = (astronaut[:100, :100].astype(int) * 128 + 255 * 127 + 127) // 255
    np.testing.assert_array_equal(out[:100, :100], half)


def test_palette_png(tmp_path, astronaut):
    pal = Image.fromarray(astronaut).quantize(256)
    expected = np.asarray(pal.convert("RGB"))
    out = load_image(save(tmp_path, "p.png", pal))
    np.testing.assert_array_equal(out, expected)
    assert mae(out, astronaut) < 8


def test_gif_first_frame(tmp_path, astronaut):
    first = Image.fromarray(astronaut).quantize(256)
    second = Image.fromarray(astronaut[::-1].copy()).quantize(256)
    path = tmp_path / "a.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    out = load_image(path)
    np.testing.assert_array_equal(out, np.asarray(first.convert("RGB")))
    assert mae(out, astronaut) < 8


def test_cmyk_jpeg(tmp_path, astronaut):
    path = save(tmp_path, "cmyk.jpg", Image.fromarray(astronaut).convert("CMYK"), quality=95)
    data = path.read_bytes()
    # Pillow writes CMYK JPEGs the way Adobe tools do: an APP14 "Adobe" marker and inverted samples,
    # which its decoder un-inverts. A wrong guess would give a colour-negative image.
    assert b"Adobe" in data
    with Image.open(path) as im:
        assert im.mode == "CMYK" and im.tile[0].args[0] == "CMYK;I"
    out = load_image(path)
    check_rgb(out)
    assert mae(out, astronaut) < 3


# EXIF orientation -> the transpose that turns the upright image into what is stored on disk.
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # stored turned counter-clockwise; viewer turns it clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_exif_orientation(tmp_path, astronaut, orientation, ext):
    upright = np.ascontiguousarray(astronaut[:, 64:448])  # not square, so a wrong turn changes the shape
    stored = Image.fromarray(upright)
    if STORED[orientation] is not None:
        stored = stored.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path, f"o{orientation}.{ext}", stored, exif=exif.tobytes(), **({"quality": 95} if ext == "jpg" else {}))
    out = load_image(path)
    check_rgb(out)
    assert out.shape == upright.shape
    if ext == "png":
        np.testing.assert_array_equal(out, upright)
    else:
        assert mae(out, upright) < 3


def test_broken_exif_is_ignored(tmp_path, astronaut):
    path = save(tmp_path, "a.jpg", Image.fromarray(astronaut), exif=b"Exif\x00\x00garbage-not-tiff", quality=95)
    assert mae(load_image(path), astronaut) < 3


# --- numpy input ---------------------------------------------------------------------------------


def test_array_rgb_returned_without_copy(astronaut):
    assert load_image(astronaut) is astronaut


def test_array_variants(astronaut):
    grey = astronaut[:, :, 0]
    np.testing.assert_array_equal(load_image(grey), np.dstack([grey] * 3))
    np.testing.assert_array_equal(load_image(grey[:, :, None]), np.dstack([grey] * 3))
    np.testing.assert_array_equal(load_image(astronaut.astype(np.uint16) * 257), astronaut)
    np.testing.assert_array_equal(load_image(astronaut / 255.0), astronaut)
    np.testing.assert_array_equal(load_image((astronaut / 255.0).astype(np.float32)), astronaut)
    np.testing.assert_array_equal(load_image(astronaut.astype(np.int64)), astronaut)
    opaque = np.dstack([astronaut, np.full(grey.shape, 255, np.uint8)])
    np.testing.assert_array_equal(load_image(opaque), astronaut)
    clear = np.dstack([astronaut, np.zeros(grey.shape, np.uint8)])
    assert (load_image(clear) == 255).all()
    view = astronaut[::2, ::2]
    out = load_image(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "no pixels"),
        (np.full((4, 4, 3), 1.5), "[0, 1]"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.full((4, 4, 3), 300, np.int32), "0..255"),
        (np.zeros((4, 4, 3), np.complex64), "dtype"),
    ],
)
def test_bad_arrays(array, words):
    with pytest.raises(ImageError, match="<array>") as info:
        load_image(array)
    assert words in str(info.value)


# --- failures ------------------------------------------------------------------------------------


def assert_image_error(source, label: str, words: str | None = None, **kw) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(source, **kw)
    message = str(info.value)
    assert label in message and "\n" not in message, message
    if words:
        assert words in message.lower(), message
    return info.value


def test_missing_and_directory(tmp_path):
    assert_image_error(tmp_path / "nope.jpg", "nope.jpg", "no such file")
    assert_image_error(tmp_path, str(tmp_path), "directory")


def test_empty_inputs(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert_image_error(path, "empty.jpg", "empty")
    assert_image_error(b"", "<bytes>", "empty")


@pytest.mark.parametrize("ext, kw", [("jpg", {}), ("jpg", {"progressive": True}), ("png", {})])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.95])
def test_truncated(tmp_path, astronaut, ext, kw, keep):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    good = save(tmp_path, f"good.{ext}", Image.fromarray(astronaut), **kw).read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(good[: int(len(good) * keep)])
    assert_image_error(path, "cut." + ext, "truncated")
    assert_image_error(path.read_bytes(), "<bytes>", "truncated")


def test_jpeg_missing_only_end_marker_is_refused(tmp_path, astronaut):
    good = save(tmp_path, "good.jpg", Image.fromarray(astronaut)).read_bytes()
    assert_image_error(good[:-2], "<bytes>", "truncated")


def test_truncated_refused_even_if_global_flipped(tmp_path, astronaut, monkeypatch):
    good = save(tmp_path, "good.jpg", Image.fromarray(astronaut)).read_bytes()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert_image_error(good[: len(good) // 2], "<bytes>", "load_truncated_images")


def test_not_images(tmp_path):
    rng = np.random.default_rng(1)
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_image_error(noise, "noise.jpg", "not a recognised image")
    text = tmp_path / "notes.png"
    text.write_text("just some text\nover two lines\n")
    assert_image_error(text, "notes.png", "not a recognised image")
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    assert_image_error(pdf, "doc.pdf", "not a recognised image")
    eps = tmp_path / "a.eps"  # Pillow can read EPS via Ghostscript; faceprint must not try
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    assert_image_error(eps, "a.eps", "not a recognised image")


def test_corrupt_jpeg_body(tmp_path, astronaut):
    good = bytearray(save(tmp_path, "good.jpg", Image.fromarray(astronaut)).read_bytes())
    sos = good.find(b"\xff\xda")
    good[sos + 2 : sos + 4] = b"\xff\xff"  # scan header length nonsense
    path = tmp_path / "bad.jpg"
    path.write_bytes(bytes(good))
    assert_image_error(path, "bad.jpg")


def test_corrupt_png_crc(tmp_path, astronaut):
    good = bytearray(save(tmp_path, "good.png", Image.fromarray(astronaut)).read_bytes())
    idat = good.find(b"IDAT")
    good[idat + 10] ^= 0xFF
    assert_image_error(bytes(good), "<bytes>")


def test_huge_header_fails_fast(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(raw_png(100_000, 100_000, 8, 2, b"\x00" * 64))  # claims 30 GB of RGB
    start = time.perf_counter()
    assert_image_error(path, "bomb.png", "pixels")
    assert time.perf_counter() - start < 1.0


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch, astronaut):
    # 8000x8000 is under Pillow's own guard, so this is faceprint's limit at work. The IDAT is far
    # too short for that size: had anything been decoded we would see a truncation error instead.
    big = raw_png(8000, 8000, 8, 0, b"\x00" * 100)
    assert_image_error(big, "<bytes>", "over the limit")
    path = save(tmp_path, "a.png", Image.fromarray(astronaut))
    assert_image_error(path, "a.png", "over the limit", max_pixels=512 * 512 - 1)
    assert load_image(path, max_pixels=512 * 512).shape == (512, 512, 3)
    monkeypatch.setenv("FACEPRINT_MAX_PIXELS", "1000")
    assert_image_error(path, "a.png", "over the limit")
    assert load_image(path, max_pixels=10**6).shape == (512, 512, 3)  # the argument wins
    monkeypatch.setenv("FACEPRINT_MAX_PIXELS", "lots")
    with pytest.raises(FaceprintError, match="FACEPRINT_MAX_PIXELS"):
        load_image(path)


def test_name_overrides_label(tmp_path, astronaut):
    good = save(tmp_path, "good.jpg", Image.fromarray(astronaut)).read_bytes()
    assert_image_error(good[:1000], "upload.jpg", "truncated", name="upload.jpg")
    assert_image_error(np.zeros((2, 2, 2), np.uint8), "stored face 7", "shape", name="stored face 7")


def test_not_a_source():
    with pytest.raises(ImageError, match="int"):
        load_image(42)


# --- saving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext, tol", [("png", 0), ("jpg", 3.0), ("JPEG", 3.0), ("webp", 4.0)])
def test_save_roundtrip(tmp_path, astronaut, ext, tol):
    path = save_image(tmp_path / f"out.{ext}", astronaut)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert mae(load_image(path), astronaut) <= tol


def test_save_errors(tmp_path, astronaut):
    with pytest.raises(ImageError, match=r"out\.gif.*extension"):
        save_image(tmp_path / "out.gif", astronaut)
    with pytest.raises(ImageError, match="missing"):
        save_image(tmp_path / "missing" / "out.png", astronaut)
    with pytest.raises(ImageError, match="shape"):
        save_image(tmp_path / "out.png", np.zeros((3, 3, 2), np.uint8))


@pytest.mark.parametrize("side", [10_000, 14_000])  # 100 MP: Pillow would warn; 196 MP: Pillow would refuse
def test_faceprints_limit_speaks_not_pillows(side):
    header_only = raw_png(side, side, 8, 2, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # DecompressionBombWarning would fail the test
        with pytest.raises(ImageTooLargeError, match=r"over the limit of 40\.0 \(set max_pixels"):
            load_image(header_only)


# --- reduced decoding ------------------------------------------------------------------------------
def _big(astronaut: np.ndarray) -> np.ndarray:
    """A 2003x1602 photo (odd sizes: the last reduced pixel covers a partial block)."""
    return cv2.resize(astronaut, (2003, 1602), interpolation=cv2.INTER_CUBIC)


def _blocks(full: np.ndarray, k: int) -> np.ndarray:
    """The mean of each whole ``k`` x ``k`` block: what reducing by ``k`` means."""
    h, w = full.shape[0] // k, full.shape[1] // k
    return np.rint(full[:h * k, :w * k].reshape(h, k, w, k, 3).mean(axis=(1, 3))).astype(np.uint8)


@pytest.mark.parametrize("name, kw, tol", [("a.jpg", {"quality": 95}, 3.0), ("a.png", {}, 1.0),
                                           ("p.png", {"palette": True}, 8.0), ("a.webp", {"lossless": True}, 1.0)])
def test_reduced_decoding_matches_reducing_the_full_image(tmp_path, astronaut, name, kw, tol):
    big = _big(astronaut)
    im = Image.fromarray(big)
    if kw.pop("palette", False):  # a mode Pillow cannot average: reduced after conversion to RGB
        im = im.quantize(256)
    path = save(tmp_path, name, im, **kw)
    full = load_image(path)
    out = load_reduced(path, 500)  # 2003 // 4 >= 500 > 2003 // 8: a quarter
    assert (out.scale, out.width, out.height) == (4, 2003, 1602)
    check_rgb(out.pixels)
    assert out.pixels.shape == (401, 501, 3)
    assert mae(out.pixels[:400, :500], _blocks(full, 4)) < tol
    assert load_reduced(path, 1002).scale == 1 and load_reduced(path, 1001).scale == 2
    assert load_reduced(path, None).scale == 1
    assert load_reduced(full, 500).pixels is full  # arrays are never reduced


def test_reduced_decoding_turns_upright_with_the_original_size(tmp_path, astronaut):
    upright = _big(astronaut)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path, "o6.jpg", Image.fromarray(upright).transpose(STORED[6]), exif=exif.tobytes(), quality=95)
    out = load_reduced(path, 800)
    assert (out.scale, out.width, out.height) == (2, 2003, 1602) and out.pixels.shape == (801, 1002, 3)
    assert mae(out.pixels[:801, :1001], _blocks(upright, 2)) < 3
