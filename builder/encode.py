"""Image bytes as stored: JPEG for photos, PNG for masks and cut-outs, 16-bit PNG for depth."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

# zlib level 1: masks and depth shrink nearly as much as at level 6, at a fraction of the time.
PNG_COMPRESS_LEVEL = 1


def _save(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **params)
    return buffer.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return _save(Image.fromarray(rgb, "RGB"), format="JPEG", quality=quality)


def encode_png(array: np.ndarray) -> bytes:
    """uint8 L (H x W) or RGBA (H x W x 4)."""
    if array.ndim == 2 and array.dtype == np.uint8:
        return encode_png_l(array)
    return _save(Image.fromarray(array), format="PNG", compress_level=PNG_COMPRESS_LEVEL)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png_l(array: np.ndarray) -> bytes:
    """8-bit grayscale PNG written directly: filter type 0 on every row, zlib level 1.

    For masks (long runs of 0 and 255) this is ~3x faster than Pillow's encoder (0.04 vs 0.12 ms at
    224 x 224) for files ~10% larger; any PNG reader, Pillow included, decodes the same pixels."""
    height, width = array.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # a leading 0 byte per row: filter "None"
    rows[:, 1:] = array
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return (_PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)) + _png_chunk(b"IEND", b""))


def encode_png16(depth: np.ndarray) -> bytes:
    """uint16 H x W as a 16-bit grayscale PNG (mode I;16), which the Hub viewer can show."""
    if depth.dtype != np.uint16:
        raise TypeError(f"expected uint16 depth, got {depth.dtype}")
    return _save(Image.fromarray(depth), format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def decode(data: bytes) -> np.ndarray:
    """Pixels exactly as a user of the dataset gets them (datasets decodes with PIL)."""
    return np.asarray(decode_image(data))


def decode_image(data: bytes) -> Image.Image:
    """The decoded PIL image (loaded), for PIL-side statistics without copying into numpy."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def image_cell(data: bytes) -> dict:
    """The value of an Image column: our own bytes, so datasets never re-encodes (it would store uint16 as TIFF)."""
    return {"bytes": data, "path": None}
