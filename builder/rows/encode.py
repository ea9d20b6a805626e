"""Image bytes as stored: JPEG for photos, PNG for masks and cut-outs, 16-bit PNG for depth."""

from __future__ import annotations

import io
import struct
import zlib

import deflate
import numpy as np
from PIL import Image

# Deflate level 1: masks and depth shrink nearly as much as at level 6, at a fraction of the time.
PNG_COMPRESS_LEVEL = 1


def _deflate(data: bytes, level: int) -> bytes:
    """stdlib zlib, for masks, alpha and other 8-bit PNGs: its stream is a function of the bytes and the level
    alone, and on masks (long runs) it is the fastest (0.04 ms at 224 x 224 against libdeflate's 0.11). ISA-L's
    (python-isal 1.9.1) is not deterministic: on the same scanlines it gave other (valid) bytes for one map of 820
    in 2 of 40 fresh processes, never with address randomisation off (docs/determinism.md)."""
    return zlib.compress(data, level)


def _deflate_depth(data: bytes, level: int) -> bytes:
    """libdeflate (the `deflate` package, version pinned: another libdeflate may choose other matches), for depth
    maps: 2.1x faster than zlib on a 224 x 224 16-bit map (0.58 ms against 1.21) and 7% smaller, 8-bit maps alike;
    its stream is a function of the bytes and the level too (tests/test_codecs.py: fresh processes, buffer
    alignments)."""
    return bytes(deflate.zlib_compress(data, level))


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
_FILTER_NONE, _FILTER_SUB = 0, 1


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_gray(rows: np.ndarray, bit_depth: int, compress=_deflate) -> bytes:
    """A grayscale PNG from H x (1 + row bytes) uint8 scanlines, each already filtered and tagged."""
    height, width = rows.shape[0], (rows.shape[1] - 1) * 8 // bit_depth
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale, no interlace
    return (_PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", compress(rows.tobytes(), PNG_COMPRESS_LEVEL)) + _png_chunk(b"IEND", b""))


def encode_png_l(array: np.ndarray, compress=_deflate) -> bytes:
    """8-bit grayscale PNG written directly, filter None on every row.

    Masks are long runs of 0 and 255, which deflate well unfiltered: at 224 x 224 0.09 ms and 1.3 KB with
    stdlib zlib, Pillow 0.4 ms and 1.1 KB; Sub, Up or Paeth gave no smaller files. Any PNG reader, Pillow
    included, decodes the same pixels."""
    rows = np.empty((array.shape[0], array.shape[1] + 1), dtype=np.uint8)
    rows[:, 0] = _FILTER_NONE
    rows[:, 1:] = array
    return _png_gray(rows, 8, compress)


def encode_png16(depth: np.ndarray) -> bytes:
    """uint16 H x W as a 16-bit grayscale PNG (mode I;16, which the Hub viewer can show), filter Sub.

    A depth map is smooth along a row, so each byte minus the same byte of the pixel to its left
    (modulo 256, as the PNG spec defines Sub) is mostly near zero and deflates well: at 224 x 224
    1.6 ms and 44 KB against Pillow's 2.6 ms and 54 KB (both zlib; libdeflate since)."""
    if depth.dtype != np.uint16:
        raise TypeError(f"expected uint16 depth, got {depth.dtype}")
    data = depth.astype(">u2").view(np.uint8)  # PNG stores 16-bit samples big-endian
    rows = np.empty((data.shape[0], data.shape[1] + 1), dtype=np.uint8)
    rows[:, 0] = _FILTER_SUB
    rows[:, 1:3] = data[:, :2]
    np.subtract(data[:, 2:], data[:, :-2], out=rows[:, 3:])
    return _png_gray(rows, 16, _deflate_depth)


_OUR_FILTERS = {8: _FILTER_NONE, 16: _FILTER_SUB}  # bit depth -> the filter every row of our PNGs has


def decode_png_gray(data: bytes) -> np.ndarray | None:
    """A grayscale PNG as `encode_png_l` (8-bit, filter None) or `encode_png16` (16-bit, filter Sub) writes it,
    decoded without Pillow: libdeflate's inflate, then for 16 bits the Sub filter undone as a per-byte-lane
    running sum modulo 256 (3x faster than Pillow on a 224 x 224 depth map, 5x on a mask; the same values). None
    for any other PNG, or a row with another filter (the caller decodes it with Pillow); a chunk whose CRC is
    wrong raises, as in Pillow."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, bits, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (colour, compression, filtering, interlace) != (0, 0, 0, 0) or bits not in _OUR_FILTERS:
        return None
    idat, position = [], 8
    while position + 12 <= len(data):
        length, tag = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if zlib.crc32(tag + body) != int.from_bytes(data[position + 8 + length:position + 12 + length], "big"):
            raise SyntaxError(f"broken PNG: bad CRC in its {tag.decode('latin-1')} chunk")
        if tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
        position += 12 + length
    row_bytes = width * bits // 8
    try:
        scanlines = deflate.zlib_decompress(b"".join(idat), height * (1 + row_bytes))
    except deflate.DeflateError:
        return None
    rows = np.frombuffer(scanlines, np.uint8).reshape(height, 1 + row_bytes)
    if not (rows[:, 0] == _OUR_FILTERS[bits]).all():
        return None
    if bits == 8:
        return rows[:, 1:]
    big_endian = np.cumsum(rows[:, 1:].reshape(height, width, 2), axis=1, dtype=np.uint8)  # wraps modulo 256
    return big_endian.view(">u2").reshape(height, width)


def decode(data: bytes) -> np.ndarray:
    """Pixels exactly as a user of the dataset gets them (datasets decodes with PIL)."""
    return np.asarray(decode_image(data))


def decode_image(data: bytes) -> Image.Image:
    """The decoded PIL image (loaded), for PIL-side statistics without copying into numpy.

    Pillow, not simplejpeg: the same pixels (468 of 468 test JPEGs) but no clear gain where it counts,
    decode + histogram per composite: 7-17% faster at 224, 3-12% slower at 518 (the copy into PIL)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def decode_jpeg(data: bytes, size: tuple[int, int]) -> Image.Image:
    """A JPEG that `encode_jpeg` wrote of an RGB image of `size` (width, height), decoded by Pillow's own JPEG
    decoder fed the bytes at once (`Image.frombytes`): what `decode_image` gives, pixel for pixel
    (tests/test_codecs.py), without Image.open's format probing and marker parsing in Python."""
    return Image.frombytes("RGB", size, data, "jpeg", "RGB", "")


def image_cell(data: bytes) -> dict:
    """The value of an Image column: our own bytes, so datasets never re-encodes (it would store uint16 as TIFF)."""
    return {"bytes": data, "path": None}


def encode_depth(levels: np.ndarray) -> bytes:
    """A 16-bit PNG (mode I;16) for uint16 levels, an 8-bit PNG L for uint8 ones; both deflated by libdeflate."""
    return encode_png16(levels) if levels.dtype == np.uint16 else encode_png_l(levels, _deflate_depth)
