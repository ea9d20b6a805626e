"""How the depth maps given with `--bg-depth-dir` are stored in the `backgrounds` config, so that a dataset placed by
them verifies from itself (a Hub export too). The columns exist only in such a dataset (builder.contract.schema).

Each map, cropped and resized to R x R as its background was (builder.rows.bg_depth), is stored in the maps' own
kind (`--bg-depth-kind`: disparity, or depth, which is metres for `--placement-mode physical`) as `given_depth`, a
16-bit PNG (mode I;16) whose level 0 is kept for unknown pixels: the known values are scaled linearly from
`given_depth_min` (level 1) to `given_depth_max` (level 65535). Ground placement, in generation and in verify, reads
the maps back from these columns (`GivenDepth.values`), so both derive the same placements from the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

COLUMN, MIN_COLUMN, MAX_COLUMN = "given_depth", "given_depth_min", "given_depth_max"
MODE = "I;16"  # the PNG mode a user decodes
UNKNOWN = 0  # the level of an unknown pixel
FIRST, PEAK = 1, 65535  # the levels of given_depth_min and given_depth_max
STEPS = PEAK - FIRST

READING = (f"`{COLUMN}` is a 16-bit PNG: `value = {MIN_COLUMN} + (png - {FIRST}) / {STEPS} * ({MAX_COLUMN} - "
           f"{MIN_COLUMN})` where `png > {UNKNOWN}`; `png == {UNKNOWN}` is unknown")


def range_problems(low: float | None, high: float | None) -> list[str]:
    """A stored range that is missing, not finite or backwards."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high) and low <= high):
        return [f"{MIN_COLUMN} {low} / {MAX_COLUMN} {high}: need finite values with min <= max"]
    return []


@dataclasses.dataclass(frozen=True)
class GivenDepth:
    """One stored map: its levels and the values of its first and last level (float32, as the columns hold them)."""

    levels: np.ndarray  # R x R uint16, UNKNOWN where unknown
    low: float  # the value of level FIRST
    high: float  # the value of level PEAK

    @classmethod
    def of(cls, values: np.ndarray) -> "GivenDepth":
        """A map's values (float, NaN where unknown) as stored: rounded to the nearest of 65535 levels spanning the
        known values (all at level FIRST when they are equal)."""
        known = np.isfinite(values)
        low, high = ((float(np.float32(values[known].min())), float(np.float32(values[known].max())))
                     if known.any() else (0.0, 0.0))
        unit = (np.where(known, values, low) - low) / (high - low) if high > low else np.zeros(values.shape)
        levels = FIRST + np.rint(np.clip(unit, 0.0, 1.0) * STEPS)
        return cls(np.where(known, levels, UNKNOWN).astype(np.uint16), low, high)

    def values(self) -> np.ndarray:
        """The stored values as float64, NaN where unknown."""
        scaled = self.low + (self.levels.astype(np.float64) - FIRST) / STEPS * (self.high - self.low)
        return np.where(self.levels == UNKNOWN, np.nan, scaled)

    def sha256(self) -> str:
        """The stored map's hash, which the manifest records beside its file's (`stored_sha256`): the levels as
        little-endian uint16, row by row, then low and high as little-endian float32."""
        digest = hashlib.sha256(np.ascontiguousarray(self.levels, dtype="<u2").tobytes())
        digest.update(np.array([self.low, self.high], dtype="<f4").tobytes())
        return digest.hexdigest()

    def problems(self, kind: str) -> list[str]:
        """What no stored map can be: a bad range (`range_problems`), known levels that do not span FIRST..PEAK
        (FIRST alone when min == max), or in a `depth` map (distances; 0 is unknown) a distance not above 0."""
        if problems := range_problems(self.low, self.high):
            return problems
        known = self.levels[self.levels != UNKNOWN]
        if not known.size:
            return []
        span = (FIRST, PEAK if self.high > self.low else FIRST)
        if (int(known.min()), int(known.max())) != span:
            problems.append(f"{COLUMN}'s known levels run {known.min()}..{known.max()}, not {span[0]}..{span[1]}")
        if kind == "depth" and self.low <= 0:
            problems.append(f"{MIN_COLUMN} {self.low}: a depth map's known distances are above 0 (0 is unknown)")
        return problems
