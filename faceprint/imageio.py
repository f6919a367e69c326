"""The one place images enter and leave faceprint.

Every entry point (CLI, Python API, HTTP server) decodes through :func:`load_image`, so they all
agree on what a valid image is and every stage downstream can assume an ``HxWx3`` ``uint8`` RGB,
C-contiguous array, the right way up.

Decisions, so callers need not guess:

* **Alpha** is composited onto white, not dropped: the colour under fully transparent pixels is
  often junk (black, or leftovers of an editor), while white is what a viewer shows and what
  cut-out portraits and ID photos are usually placed on.
* **16-bit** samples are rescaled to 8 bits (greyscale: ``round(v * 255 / 65535)``; colour PNGs:
  the high byte, which is how Pillow hands them over), never clipped at 255.
* **Size limit**: images with more than ``max_pixels`` pixels (argument, else the
  ``FACEPRINT_MAX_PIXELS`` environment variable, else 40 megapixels) are refused from the header,
  before any pixel is decoded. That limit is the only one: Pillow's own bomb guard
  (``Image.MAX_IMAGE_PIXELS``) is switched off when this module is imported, since it would warn
  from 89 megapixels and refuse from 179 with its own message, whatever faceprint's limit says.
  Code that opens untrusted images with Pillow directly in the same process must check their
  size itself.
* **Reduced decoding** (:func:`load_reduced`): a caller that needs no more than ``min_side``
  pixels along the long side gets large images reduced by a power of two. JPEGs are reduced
  while decoding (DCT scaling), so the full image never exists in memory; other formats are
  decoded whole and reduced at once.
* **Truncated or corrupt files** are refused, never returned half-grey:
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is left False and the pixels are decoded here, inside
  the error handling, not lazily later.
* **EXIF orientation** (all eight values) is applied, so a phone photo comes out upright.
* Only ordinary raster formats are opened (JPEG/MPO, PNG, WebP, BMP, TIFF, GIF, PNM; AVIF where
  Pillow has it): Pillow plugins such as EPS would hand untrusted input to Ghostscript.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .atomic import atomic_file
from .errors import FaceprintError, ImageError, ImageTooLargeError
from .types import Image as ImageArray
from .types import ImageLike


DEFAULT_MAX_PIXELS = 40_000_000
#: File suffixes taken for images when a folder is searched for them.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MAX_PIXELS_ENV = "FACEPRINT_MAX_PIXELS"

Image.init()
#: Pillow formats we are willing to parse (those this Pillow build can read).
FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM", "AVIF") if f in Image.OPEN)

_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 6}, "WEBP": {"quality": 95, "method": 4}}
_EXIF_ORIENTATION = 0x0112
#: Modes whose pixels Pillow's ``reduce`` may average (palette indices, 16-bit and bilevel may not).
_REDUCIBLE = ("RGB", "RGBA", "L", "LA", "CMYK", "YCbCr")

# faceprint checks each image's size against its own limit before decoding (see above).
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class Decoded:
    """An image decoded, perhaps reduced: point ``(x, y)`` of ``pixels`` is ``(x * scale, y * scale)``
    in the image, which is ``width`` x ``height`` (upright)."""

    pixels: ImageArray
    scale: int
    width: int
    height: int


def load_image(source: ImageLike, *, max_pixels: int | None = None, name: str | None = None) -> ImageArray:
    """Decode ``source`` (a path, encoded bytes, or an array) into an upright ``HxWx3`` uint8 RGB array.

    Arrays are validated and converted (grey, ``HxWx1``, RGBA, uint16, float in [0, 1], any integer
    dtype within 0..255) and assumed to be RGB, not OpenCV's BGR. A uint8 ``HxWx3`` C-contiguous
    array is returned as is, without a copy. Any failure raises :class:`ImageError` with one line
    naming the input (``name`` if given, e.g. the file bytes came from; else the path, ``<bytes>``
    or ``<array>``) and the problem.
    """
    return load_reduced(source, None, max_pixels=max_pixels, name=name).pixels


def load_reduced(source: ImageLike, min_side: int | None, *, max_pixels: int | None = None,
                 name: str | None = None) -> Decoded:
    """:func:`load_image`, with an encoded image whose long side is at least twice ``min_side``
    reduced by the largest power of two (at most 8) that keeps its long side at least ``min_side``
    (None: never reduced; arrays never are).

    For callers that do not need every pixel of a large photo (a detector that scales the image
    down anyway): a 40-megapixel JPEG then costs a quarter of its full size in memory.
    """
    if isinstance(source, np.ndarray):
        pixels = _from_array(source, name or "<array>")
        return Decoded(pixels, 1, pixels.shape[1], pixels.shape[0])
    limit = _pixel_limit(max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        data = bytes(source)
        if not data:
            raise ImageError(f"{name}: empty input, no image data")
        return _decode(io.BytesIO(data), name, limit, min_side)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot access file: {_one_line(exc.strerror or exc)}") from None
        if path.is_dir():
            raise ImageError(f"{name}: is a directory, not an image file")
        if st.st_size == 0:
            raise ImageError(f"{name}: empty file, no image data")
        try:
            fp = open(path, "rb")
        except OSError as exc:
            raise ImageError(f"{name}: cannot open file: {_one_line(exc.strerror or exc)}") from None
        with fp:
            return _decode(fp, name, limit, min_side)
    raise ImageError(f"<{type(source).__name__}>: not an image source (expected a path, bytes or a numpy array)")


def save_image(path: str | os.PathLike, image: ImageArray | np.ndarray) -> Path:
    """Write an RGB image to ``path`` in the format its extension names (.jpg/.jpeg, .png, .webp).

    The file is written beside its destination and renamed into place, so a crash never leaves a
    half-written image under the final name. It gets the mode any new file would (0666 less the
    umask), not the private 0600 of a temporary file. Returns the path written.
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SAVE_FORMATS))
        raise ImageError(f"{path}: cannot save with extension {path.suffix or '(none)'!r}; use one of {known}")
    pixels = _from_array(np.asarray(image), "<array>")
    try:
        with atomic_file(path, sync=False) as fp:
            Image.fromarray(pixels).save(fp, fmt, **_SAVE_OPTIONS[fmt])
    except OSError as exc:
        raise ImageError(f"{path}: cannot write image: {_one_line(exc.strerror or exc)}") from None
    return path


def _pixel_limit(max_pixels: int | None) -> int:
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(raw)
        except ValueError:
            raise FaceprintError(f"{MAX_PIXELS_ENV} must be a positive integer, got {raw!r}") from None
    if max_pixels <= 0:
        raise FaceprintError(f"max_pixels must be a positive integer, got {max_pixels}")
    return int(max_pixels)


def _reduction(width: int, height: int, min_side: int | None) -> int:
    """The largest power of two, at most 8, that keeps the long side at least ``min_side``."""
    factor = 1
    while min_side and factor < 8 and max(width, height) // (factor * 2) >= min_side:
        factor *= 2
    return factor


def _decode(fp, name: str, limit: int, min_side: int | None) -> Decoded:
    # Never let a truncated file decode into grey padding, even if someone flipped the global.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageError(f"{name}: refusing to decode while PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True")
    try:
        with Image.open(fp, formats=FORMATS) as im:
            # Image.open has only parsed the header: check the size before decoding pixels.
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageError(f"{name}: image has no pixels ({width}x{height})")
            if width * height > limit:
                raise ImageTooLargeError(
                    f"{name}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
                    f"over the limit of {limit / 1e6:.1f} (set max_pixels or {MAX_PIXELS_ENV})"
                )
            factor, scale = _reduction(width, height, min_side), 1
            if factor > 1 and (drafted := im.draft(None, (width // factor, height // factor))):
                scale = round(width / drafted[1][2])  # JPEG: decoded at 1/scale (DCT scaling)
            im.load()  # decode now, inside this try, so truncation and corruption surface here
            orientation = _orientation(im)
            if factor > scale and im.mode in _REDUCIBLE:
                full, im = im, im.reduce(factor // scale)
                full.close()  # free the full-size pixels now, not when the file is closed
                scale = factor
            pixels = _to_rgb(im, name)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not a recognised image format (supported: {', '.join(FORMATS)})") from None
    except MemoryError:
        raise ImageError(f"{name}: out of memory while decoding") from None
    except Exception as exc:  # Pillow reports corruption as OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageError(f"{name}: corrupt or truncated image: {_one_line(exc)}") from None
    if factor > scale:  # a mode Pillow cannot average: reduce the RGB pixels instead
        import cv2  # loaded on first use, not when faceprint is imported

        pixels = cv2.resize(pixels, (-(-width // factor), -(-height // factor)), interpolation=cv2.INTER_AREA)
        scale = factor
    pixels = _orient(pixels, orientation)
    if orientation >= 5:  # turned a quarter: the upright image is height x width
        width, height = height, width
    # Pillow hands pixels over as read-only bytes; callers (drawing, in-place preprocessing) need to write.
    return Decoded(pixels if pixels.flags.writeable else pixels.copy(), scale, width, height)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag, or 1; a malformed EXIF block is no reason to refuse the pixels."""
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the stored pixels upright as EXIF orientation 1..8 says (views, then one copy)."""
    if orientation == 2:  # mirrored horizontally
        a = a[:, ::-1]
    elif orientation == 3:  # rotated 180
        a = a[::-1, ::-1]
    elif orientation == 4:  # mirrored vertically
        a = a[::-1]
    elif orientation == 5:  # transposed (mirror about the main diagonal)
        a = a.transpose(1, 0, 2)
    elif orientation == 6:  # needs a 90 degree clockwise turn
        a = a.transpose(1, 0, 2)[:, ::-1]
    elif orientation == 7:  # transversed (mirror about the anti-diagonal)
        a = a[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:  # needs a 90 degree counter-clockwise turn
        a = a.transpose(1, 0, 2)[::-1]
    return np.ascontiguousarray(a)


def _to_rgb(im: Image.Image, name: str) -> np.ndarray:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return np.asarray(im)
    if mode.startswith("I;16") or mode in ("I", "F"):
        # High bit depth greyscale: scale numerically, Pillow's convert("L") would clip "I".
        return _from_array(np.asarray(im), name, bits16=mode != "F")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return _composite_white(np.asarray(im.convert("RGBA")))
    if mode == "L":
        return np.repeat(np.asarray(im)[:, :, None], 3, axis=2)
    # P, 1, CMYK (Adobe's inverted CMYK JPEGs are un-inverted by Pillow's decoder), YCbCr, LAB, ...
    return np.asarray(im.convert("RGB"))


def _composite_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _from_array(a: np.ndarray, name: str, *, bits16: bool = False) -> np.ndarray:
    """Validate and convert an in-memory array; the rules are in :func:`load_image`'s docstring."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"{name}: array has no pixels (shape {a.shape})")

    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16 or bits16:
        if a.dtype.kind not in "ui":
            raise ImageError(f"{name}: expected integer 16-bit samples, got dtype {a.dtype}")
        if a.dtype != np.uint16 and (a.min() < 0 or a.max() > 65535):
            raise ImageError(f"{name}: 16-bit samples outside 0..65535")
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(f"{name}: float array contains NaN or infinity")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(f"{name}: float arrays must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]")
        a = np.rint(a.astype(np.float32) * 255.0).astype(np.uint8)
    elif a.dtype.kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"{name}: {a.dtype} samples must lie in 0..255 (or use uint16), got [{lo}, {hi}]")
        a = a.astype(np.uint8)
    else:
        raise ImageError(f"{name}: unsupported array dtype {a.dtype}")

    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = _composite_white(a)
    return np.ascontiguousarray(a)


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
