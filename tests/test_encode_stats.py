import io

import numpy as np
from PIL import Image

from builder.rows.encode import decode, encode_jpeg, encode_png, encode_png16
from builder.rows.stats import ImageStats, channel_moments, merge_all


def test_png16_round_trip_keeps_every_value_and_mode():
    depth = np.arange(0, 65536, 1, dtype=np.uint32).reshape(256, 256).astype(np.uint16)
    data = encode_png16(depth)
    image = Image.open(io.BytesIO(data))
    assert image.mode == "I;16" and image.format == "PNG"
    assert np.array_equal(decode(data), depth)


def test_png_and_jpeg_modes():
    assert Image.open(io.BytesIO(encode_png(np.zeros((4, 5), np.uint8)))).mode == "L"
    assert Image.open(io.BytesIO(encode_png(np.zeros((4, 5, 4), np.uint8)))).mode == "RGBA"
    assert decode(encode_jpeg(np.zeros((8, 8, 3), np.uint8), 95)).shape == (8, 8, 3)


def test_merged_stats_equal_one_pass_stats():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 65536, (9, 7), dtype=np.uint16) for _ in range(6)]
    one_pass = ImageStats(65535)
    for image in images:
        one_pass.add(image, 10)
    halves = []
    for part in (images[:2], images[2:]):
        stats = ImageStats(65535)
        for image in part:
            stats.add(image, 10)
        halves.append({"depth": stats})
    merged = merge_all(halves)["depth"]
    assert merged == one_pass
    values = np.stack(images).astype(np.float64) / 65535
    assert np.isclose(merged.mean[0], values.mean(), rtol=0, atol=1e-12)
    assert np.isclose(merged.std[0], values.std(), rtol=0, atol=1e-12)
    assert merged.count == 6 and merged.encoded_bytes == 60 and merged.pixels == 6 * 63


def test_channel_moments_are_exact_for_every_layout():
    """uint8 moments come from PIL's histogram for 1, 3 and 4 channels, from np.bincount otherwise: all equal the
    sums over the widened pixels, for views that are not contiguous too."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    for pixels in (frame[..., 0], frame[..., :1], frame[..., :2], frame[..., :3], frame, frame[3:17, 5:31, :3],
                   frame[::2, ::3, 3], rng.integers(0, 65536, (6, 5), dtype=np.uint16)):
        wide = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1).astype(np.int64)
        assert channel_moments(pixels) == ([int(v) for v in wide.sum(axis=0)], [int(v) for v in (wide ** 2).sum(axis=0)])


def test_stats_json_round_trip_and_channels():
    stats = ImageStats(255)
    stats.add(np.dstack([np.zeros((2, 2)), np.full((2, 2), 255), np.full((2, 2), 51)]).astype(np.uint8), 3)
    assert stats.mean == [0.0, 1.0, 0.2] and stats.std == [0.0, 0.0, 0.0]
    assert ImageStats.from_json(stats.to_json()) == stats
