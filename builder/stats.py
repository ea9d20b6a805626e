"""Exact, mergeable per-channel statistics of stored images as a user decodes them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


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
        flat = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1).astype(np.int64)
        sums = flat.sum(axis=0)
        squares = np.einsum("ij,ij->j", flat, flat)
        if not self.sums:
            self.sums, self.sums_of_squares = [0] * len(sums), [0] * len(sums)
        if len(sums) != len(self.sums):
            raise ValueError(f"channel count changed from {len(self.sums)} to {len(sums)}")
        self.sums = [a + int(b) for a, b in zip(self.sums, sums)]
        self.sums_of_squares = [a + int(b) for a, b in zip(self.sums_of_squares, squares)]
        self.count += 1
        self.encoded_bytes += encoded_bytes
        self.pixels += flat.shape[0]

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


def merge_all(parts: list[dict[str, ImageStats]]) -> dict[str, ImageStats]:
    merged: dict[str, ImageStats] = {}
    for part in parts:
        for kind, stats in part.items():
            merged[kind] = merged[kind].merge(stats) if kind in merged else stats
    return merged
