"""The stored PNG bytes decode to the intended pixels with Pillow and with `datasets`, and are a function of the
pixels alone: the same in every process."""

import io
import subprocess
import sys
import zlib

import datasets
import deflate
import numpy as np
from PIL import Image

from builder.rows.demo import demo_background, demo_foreground
from builder.rows.encode import decode_image, decode_jpeg, encode_depth, encode_jpeg, encode_png, encode_png16, image_cell
from builder.testing.standin_depth import StandinDepthEstimator
from tests.conftest import ROOT


def scenes(count: int, side: int, seed: int = 0) -> np.ndarray:
    """Demo backgrounds with a demo cut-out pasted in, plus camera-like noise: photo-like JPEG input."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        image = np.asarray(demo_background(i % 4).resize((side, side))).astype(np.float64)
        fg = np.asarray(demo_foreground(i % 3).resize((side // 2, side // 2))).astype(np.float64)
        x, y = rng.integers(0, side // 2, 2)
        region, alpha = image[y:y + side // 2, x:x + side // 2], fg[..., 3:] / 255
        region[:] = fg[..., :3] * alpha + region * (1 - alpha)
        image += rng.normal(0, 6, image.shape)  # sensor-like grain
        images.append(image.clip(0, 255).astype(np.uint8))
    return np.stack(images)


def depth_maps() -> list[np.ndarray]:
    smooth = list(StandinDepthEstimator().predict(scenes(3, 96)).depth)
    ramp = np.arange(65536, dtype=np.uint32).reshape(256, 256).astype(np.uint16)
    noise = np.random.default_rng(1).integers(0, 65536, (37, 53), dtype=np.uint16)  # Sub wraps modulo 256
    return smooth + [ramp, noise, np.zeros((1, 1), np.uint16), np.full((3, 2), 65535, np.uint16)]


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    disc = np.where(np.hypot(*np.mgrid[-40:41, -30:31]) < 25, 255, 0).astype(np.uint8)
    return [disc, rng.integers(0, 256, (19, 23), dtype=np.uint8), np.zeros((1, 1), np.uint8)]


def datasets_decode(blobs: list[bytes]) -> list[np.ndarray]:
    table = datasets.Dataset.from_dict({"image": [image_cell(b) for b in blobs]},
                                       features=datasets.Features({"image": datasets.Image()}))
    return [np.asarray(row["image"]) for row in table]


def test_depth_png_decodes_to_the_same_values_in_pillow_and_datasets():
    maps = depth_maps()
    blobs = [encode_png16(depth) for depth in maps]
    for depth, blob in zip(maps, blobs):
        image = Image.open(io.BytesIO(blob))
        assert image.format == "PNG" and image.mode == "I;16"
        assert np.array_equal(np.asarray(image), depth)
    for depth, pixels in zip(maps, datasets_decode(blobs)):
        assert np.array_equal(pixels, depth)


def test_mask_png_decodes_to_the_same_values_in_pillow_and_datasets():
    arrays = masks()
    blobs = [encode_png(mask) for mask in arrays]
    for mask, blob in zip(arrays, blobs):
        image = Image.open(io.BytesIO(blob))
        assert image.mode == "L" and np.array_equal(np.asarray(image), mask)
    for mask, pixels in zip(arrays, datasets_decode(blobs)):
        assert np.array_equal(pixels, mask)


def idat(png: bytes) -> bytes:
    """The data of a PNG's single IDAT chunk (signature 8 bytes, IHDR 25, then IDAT's length and tag)."""
    length = int.from_bytes(png[33:37], "big")
    assert png[37:41] == b"IDAT"
    return png[41:41 + length]


def test_the_deflate_stream_is_libdeflates_for_depth_and_stdlib_zlibs_for_masks():
    """A depth PNG's compressed data is exactly libdeflate's zlib_compress(scanlines, 1), a mask's zlib.compress
    (scanlines, 1): streams that depend on the pixels alone. ISA-L's stream for the same scanlines differed
    between processes (docs/determinism.md), and a process-dependent byte breaks byte-identical reruns. Also
    smaller than Pillow's PNG at level 1."""
    depth = StandinDepthEstimator().predict(scenes(1, 224)).depth[0]
    blob = encode_png16(depth)
    scanlines = zlib.decompress(idat(blob))
    assert idat(blob) == deflate.zlib_compress(scanlines, 1)
    levels8 = (depth >> 8).astype(np.uint8)
    assert idat(encode_depth(levels8)) == deflate.zlib_compress(b"".join(b"\x00" + r.tobytes() for r in levels8), 1)
    big_endian = depth.astype(">u2").view(np.uint8)
    assert scanlines[:1] == b"\x01" and scanlines[1:3] == big_endian[0, :2].tobytes()  # Sub filter, first row
    mask = masks()[0]
    assert idat(encode_png(mask)) == zlib.compress(b"".join(b"\x00" + row.tobytes() for row in mask), 1)
    pillow = io.BytesIO()
    Image.fromarray(depth).save(pillow, format="PNG", compress_level=1)
    assert len(blob) < len(pillow.getvalue())


def test_depth_deflate_is_the_same_at_every_buffer_alignment():
    """ISA-L's stream depended on where its input lay in memory: libdeflate's must not (16 offsets of one map's
    scanlines, 16 bytes covering every SIMD load alignment up to 128 bits)."""
    depth = StandinDepthEstimator().predict(scenes(1, 224, seed=3)).depth[0]
    scanlines = zlib.decompress(idat(encode_png16(depth)))
    streams = set()
    for offset in range(16):
        buffer = bytearray(offset + len(scanlines))
        buffer[offset:] = scanlines
        streams.add(bytes(deflate.zlib_compress(memoryview(buffer)[offset:], 1)))
    assert streams == {idat(encode_png16(depth))}


def test_png_bytes_are_the_same_in_fresh_processes(tmp_path):
    """Each process has its own address layout: the bytes must not depend on it."""
    maps = np.stack([StandinDepthEstimator().predict(scenes(4, 224, seed=s)).depth for s in range(8)]).reshape(
        -1, 224, 224)
    np.save(tmp_path / "maps.npy", maps)
    code = ("import hashlib, sys, numpy as np; sys.path.insert(0, sys.argv[1]); from builder.rows.encode import "
            "encode_depth; print(hashlib.sha256(b''.join(encode_depth(m) + encode_depth((m >> 8).astype(np.uint8)) "
            "for m in np.load(sys.argv[2]))).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code, str(ROOT), str(tmp_path / "maps.npy")], check=True,
                              capture_output=True, text=True).stdout for _ in range(6)}
    assert len(digests) == 1


def test_our_jpegs_decode_straight_to_pillows_pixels():
    """The renderer decodes its composites by Pillow's JPEG decoder fed the bytes at once (`decode_jpeg`): the same
    pixels, and so the same exact statistics, as Image.open, at any size and quality, on photo-like and noise
    images, rectangular and tiny ones included."""
    rng = np.random.default_rng(3)
    images = [*scenes(3, 224), *scenes(2, 518, seed=1), rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
              np.zeros((1, 1, 3), np.uint8), np.full((16, 9, 3), 255, np.uint8)]
    for image in images:
        for quality in (50, 95, 100):
            jpeg = encode_jpeg(image, quality)
            expected, decoded = decode_image(jpeg), decode_jpeg(jpeg, image.shape[1::-1])
            assert decoded.mode == expected.mode == "RGB" and decoded.size == expected.size
            assert decoded.tobytes() == expected.tobytes() and decoded.histogram() == expected.histogram()


def test_our_gray_pngs_decode_without_pillow_to_pillows_values():
    """builder.rows.encode.decode_png_gray (the training loader's fast path) gives exactly Pillow's values for
    every depth map and mask we write, and None for a PNG it does not know (Pillow's own, with other filters;
    RGBA) or a JPEG; a broken chunk raises like Pillow."""
    from builder.rows.encode import decode_png_gray

    for array in [*depth_maps(), *masks(), *((d >> 8).astype(np.uint8) for d in depth_maps())]:
        blob = encode_png16(array) if array.dtype == np.uint16 else encode_png(array)
        decoded = decode_png_gray(blob)
        assert decoded.dtype.itemsize == array.dtype.itemsize and decoded.shape == array.shape
        assert np.array_equal(decoded, np.asarray(Image.open(io.BytesIO(blob))))
    for other in (depth_maps()[0], masks()[0]):
        pillow = io.BytesIO()
        Image.fromarray(other).save(pillow, format="PNG", compress_level=6)
        assert decode_png_gray(pillow.getvalue()) is None
    rgba = np.dstack([masks()[0]] * 4)
    jpeg = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(jpeg, format="JPEG")
    assert decode_png_gray(encode_png(rgba)) is None and decode_png_gray(jpeg.getvalue()) is None
    broken = bytearray(encode_png16(depth_maps()[0]))
    broken[60] ^= 1  # inside IDAT
    try:
        decode_png_gray(bytes(broken))
    except SyntaxError as err:
        assert "bad CRC in its IDAT chunk" in str(err)
    else:
        raise AssertionError("a broken IDAT decoded")


def test_the_loaders_tensors_are_pillows_bit_for_bit():
    """The loader's depth (16- and 8-bit, both modes) and mask tensors from the fast decode equal those of Pillow's
    decode."""
    import torch

    from builder.contract.depth_storage import storage_of_mode
    from builder.train.loader import decode_depth, decode_instance_mask, decode_unit_image

    maps = depth_maps()
    for levels in [*maps, *((d >> 8).astype(np.uint8) for d in maps)]:
        blob = encode_depth(levels)
        image = Image.open(io.BytesIO(blob))
        pillow = torch.from_numpy(storage_of_mode(image.mode).unit(np.asarray(image))).unsqueeze(0)
        assert torch.equal(decode_depth(blob, 0.0, 1.0, "unit"), pillow)
        low, high = 0.37, 12.5
        assert torch.equal(decode_depth(blob, low, high, "raw"), pillow.clone().mul_(high - low).add_(low))
    for mask in masks():
        pixels = np.asarray(Image.open(io.BytesIO(encode_png(mask))))
        assert torch.equal(decode_unit_image(encode_png(mask)),
                           torch.from_numpy(pixels.astype(np.float32)).unsqueeze(0).div_(255))
        assert torch.equal(decode_instance_mask(encode_png(mask)), torch.from_numpy(pixels.astype(np.int64))[None])
