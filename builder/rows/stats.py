"""Exact, mergeable per-channel statistics of stored images as a user decodes them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

_VALUES8 = np.arange(256, dtype=np.int64)
_SQUARES8 = _VALUES8 * _VALUES8
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # uint8 channels -> the PIL mode whose histogram counts them


def channel_moments(pixels: np.ndarray) -> tuple[list[int], list[int]]:
    """Exact per-channel sum and sum of squares of an H x W (x C) integer image.

    uint8 (every composite, mask and input): a 256-bin histogram per channel (PIL's, for 1, 3 or 4 channels: 3x
    faster than np.bincount), then two dot products with the values and their squares; exact in int64
    (255**2 * pixels stays far below 2**63) and ~7x faster than squaring the widened image. Wider integers (16-bit
    depth): per channel in int64, also exact."""
    flat = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1)
    if flat.dtype == np.uint8 and flat.shape[1] in _PIL_MODES:
        image = np.ascontiguousarray(pixels.reshape(*pixels.shape[:2], -1) if flat.shape[1] > 1 else
                                     pixels.reshape(pixels.shape[:2]))
        return moments_from_histogram(Image.fromarray(image, _PIL_MODES[flat.shape[1]]).histogram(), flat.shape[1])
    if flat.dtype == np.uint8:
        histograms = [np.bincount(flat[:, c], minlength=256) for c in range(flat.shape[1])]
        return [int(h @ _VALUES8) for h in histograms], [int(h @ _SQUARES8) for h in histograms]
    sums, squares = [], []
    for c in range(flat.shape[1]):
        channel = flat[:, c].astype(np.int64)
        sums.append(int(channel.sum()))
        squares.append(int(np.dot(channel, channel)))
    return sums, squares


def moments_from_histogram(histogram, channels: int) -> tuple[list[int], list[int]]:
    """Exact sums from a uint8 image's per-channel histogram (PIL's Image.histogram(): 256 counts per band)."""
    counts = np.asarray(histogram, dtype=np.int64).reshape(channels, 256)
    return [int(v) for v in counts @ _VALUES8], [int(v) for v in counts @ _SQUARES8]


def binary_mask_moments(mask: np.ndarray, value: int = 255) -> tuple[list[int], list[int]]:
    """Moments of a single-channel mask whose pixels are all 0 or `value` (as our masks are by construction)."""
    on = int(np.count_nonzero(mask))
    return [value * on], [value * value * on]


def label_mask_moments(areas: list[int]) -> tuple[list[int], list[int]]:
    """Moments of a single-channel label image that is k on `areas[k - 1]` pixels and 0 elsewhere."""
    return ([sum(k * a for k, a in enumerate(areas, start=1))],
            [sum(k * k * a for k, a in enumerate(areas, start=1))])


@dataclasses.dataclass
class ImageStats:
    """Integer sums (Python ints never overflow), so merging shards and processes is exact."""

    max_value: int
    count: int = 0
    encoded_bytes: int = 0
    pixels: int = 0
    sums: list[int] = dataclasses.field(default_factory=list)
    sums_of_squares: list[int] = dataclasses.field(default_factory=list)

    def add(self, pixels: np.ndarray, encoded_bytes: int) -> None:
        self.add_moments(*channel_moments(pixels), pixels.shape[0] * pixels.shape[1], encoded_bytes)

    def add_moments(self, sums: list[int], squares: list[int], pixels: int, encoded_bytes: int) -> None:
        """One image given by its exact per-channel sums and sums of squares."""
        if not self.sums:
            self.sums, self.sums_of_squares = [0] * len(sums), [0] * len(sums)
        if len(sums) != len(self.sums):
            raise ValueError(f"channel count changed from {len(self.sums)} to {len(sums)}")
        self.sums = [a + b for a, b in zip(self.sums, sums)]
        self.sums_of_squares = [a + b for a, b in zip(self.sums_of_squares, squares)]
        self.count += 1
        self.encoded_bytes += encoded_bytes
        self.pixels += pixels

    def merge(self, other: "ImageStats") -> "ImageStats":
        if not self.count:
            return dataclasses.replace(other)
        if not other.count:
            return dataclasses.replace(self)
        return ImageStats(
            self.max_value, self.count + other.count, self.encoded_bytes + other.encoded_bytes,
            self.pixels + other.pixels,
            [a + b for a, b in zip(self.sums, other.sums)],
            [a + b for a, b in zip(self.sums_of_squares, other.sums_of_squares)])

    @property
    def mean(self) -> list[float]:
        return [s / (self.pixels * self.max_value) for s in self.sums]

    @property
    def std(self) -> list[float]:
        """Population std, from exact integer moments: var = (n*sum(x^2) - sum(x)^2) / (n * max)^2."""
        n, scale = self.pixels, (self.pixels * self.max_value) ** 2
        return [math.sqrt((n * q - s * s) / scale) for s, q in zip(self.sums, self.sums_of_squares)]

    def to_json(self) -> dict:
        summary = {"mean": self.mean, "std": self.std} if self.count else {}
        return {**dataclasses.asdict(self), **summary}

    @classmethod
    def from_json(cls, data: dict) -> "ImageStats":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


class StatsBook(dict):
    """column (or kind) -> ImageStats, each created on first use with its column's peak value."""

    def __init__(self, peaks: dict[str, int]):
        super().__init__()
        self.peaks = peaks

    def __missing__(self, column: str) -> ImageStats:
        self[column] = ImageStats(self.peaks[column])
        return self[column]

    def __reduce__(self):  # picklable with its peaks (dict's default reduce would drop them)
        return StatsBook._restore, (self.peaks, dict(self))

    @staticmethod
    def _restore(peaks: dict[str, int], items: dict) -> "StatsBook":
        book = StatsBook(peaks)
        book.update(items)
        return book


def merge_all(parts: list[dict[str, ImageStats]]) -> dict[str, ImageStats]:
    merged: dict[str, ImageStats] = {}
    for part in parts:
        for kind, stats in part.items():
            merged[kind] = merged[kind].merge(stats) if kind in merged else stats
    return merged
