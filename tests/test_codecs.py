"""The stored PNG bytes decode to the intended pixels with Pillow and with `datasets`, on both deflate paths
(ISA-L and stdlib zlib)."""

import io
import zlib

import datasets
import numpy as np
import pytest
from PIL import Image

from builder import encode
from builder.demo import demo_background, demo_foreground
from builder.encode import decode, encode_png, encode_png16, image_cell
from builder.standin_depth import StandinDepthEstimator


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


@pytest.fixture(params=["isal", "zlib"])
def deflate(request, monkeypatch):
    if request.param == "isal":
        isal_zlib = pytest.importorskip("isal.isal_zlib")
        monkeypatch.setattr(encode, "_deflate", isal_zlib.compress)
    else:
        monkeypatch.setattr(encode, "_deflate", zlib.compress)
    return request.param


def test_depth_png_decodes_to_the_same_values_in_pillow_and_datasets(deflate):
    maps = depth_maps()
    blobs = [encode_png16(depth) for depth in maps]
    for depth, blob in zip(maps, blobs):
        image = Image.open(io.BytesIO(blob))
        assert image.format == "PNG" and image.mode == "I;16"
        assert np.array_equal(np.asarray(image), depth)
    for depth, pixels in zip(maps, datasets_decode(blobs)):
        assert np.array_equal(pixels, depth)


def test_mask_png_decodes_to_the_same_values_in_pillow_and_datasets(deflate):
    arrays = masks()
    blobs = [encode_png(mask) for mask in arrays]
    for mask, blob in zip(arrays, blobs):
        image = Image.open(io.BytesIO(blob))
        assert image.mode == "L" and np.array_equal(np.asarray(image), mask)
    for mask, pixels in zip(arrays, datasets_decode(blobs)):
        assert np.array_equal(pixels, mask)


def test_the_two_deflate_paths_agree_and_beat_pillow_on_size(monkeypatch):
    """Different bytes, same pixels; the filtered depth PNG is smaller than Pillow's at level 1."""
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    depth = StandinDepthEstimator().predict(scenes(1, 224)).depth[0]
    blobs = {}
    for name, compress in (("isal", isal_zlib.compress), ("zlib", zlib.compress)):
        monkeypatch.setattr(encode, "_deflate", compress)
        blobs[name] = encode_png16(depth)
    pillow = io.BytesIO()
    Image.fromarray(depth).save(pillow, format="PNG", compress_level=1)
    assert blobs["isal"] != blobs["zlib"]
    assert np.array_equal(decode(blobs["isal"]), decode(blobs["zlib"]))
    assert max(map(len, blobs.values())) < len(pillow.getvalue())
