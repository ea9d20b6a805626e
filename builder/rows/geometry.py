"""Scene geometry from a background's disparity map (the standing placement rules, builder.rows.placement): where
its ground is, which feet a cut-out can stand on, how large it is there by disparity, and which pixels nearer
scenery hides. Pure functions of the stored map (float, NaN where unknown), shared by the renderer and verify.

The ground rule. For a flat floor seen by a pinhole camera, disparity is linear in the image row below the
horizon (1/Z = (y - horizon) / (f h)) and constant along a row; sky, walls facing the camera, the front faces of
objects and side walls have no vertical disparity change at a fixed column, ceilings fall downward. So a pixel
is ground where disparity rises steadily downward in its own column: the means of the W rows above it, of the
W rows around it and of the W rows below it (means against noise) rise on both sides by more than `MIN_SLOPE`
of the map's span per R rows, and the two rises are within `STEADY_RATIO` of each other: a step (an object's
top edge over far floor) rises on one side only; and the pixel itself lies between the means above and below,
and between the pixels W/2 rows above and below it (a stack of thin faces, each flat, rises on average only).
Every threshold is relative to the map's span, so the rule is invariant to the unknown scale and shift of a
relative (affine) disparity such as Depth-Anything's, and to the stored levels' scaling.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from builder.contract.plan import Placement

MIN_SLOPE = 0.25  # a ground row's disparity rise per row, in spans per R rows (a full-span floor has >= 1)
STEADY_RATIO = 4.0  # the rises above and below a ground pixel differ by at most this factor
MIN_GROUND_FRACTION = 0.02  # less ground than this share of the frame: the background's rows fall back to uniform
OCCLUSION_MARGIN = 0.03  # scenery hides the cut-out where it is nearer than its foot by this share of the span
MIN_VISIBLE = 0.25  # a cut-out with less of its mask visible is redrawn ...
MAX_TRIES = 8  # ... at most this many draws in all; the most visible one is kept
SPAN_PERCENTILES = (1.0, 99.0)  # the span of a map and the range of its ground, robust to a few outliers


def window(resolution: int) -> int:
    """W: rows compared above and below a pixel (and half the columns averaged)."""
    return max(2, round(resolution / 32))


def disparity_span(disparity: np.ndarray) -> float:
    known = disparity[np.isfinite(disparity)]
    if known.size == 0:
        return 0.0
    low, high = np.percentile(known, SPAN_PERCENTILES)
    return float(high - low)


def column_means(disparity: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Each pixel's mean over the rows y+top .. y+bottom of its own column (never across columns, so an
    object's vertical edge does not borrow the floor's slope); NaN where that reaches outside the frame or holds
    an unknown pixel."""
    known = np.isfinite(disparity)
    sums = np.pad(np.cumsum(np.where(known, disparity, 0.0), axis=0), ((1, 0), (0, 0)))
    holes = np.pad(np.cumsum(~known, axis=0), ((1, 0), (0, 0)))
    height = disparity.shape[0]
    start, stop = np.arange(height) + top, np.arange(height) + bottom + 1
    inside = (start >= 0) & (stop <= height)
    start, stop = np.clip(start, 0, height), np.clip(stop, 0, height)
    means = (sums[stop] - sums[start]) / (bottom - top + 1)
    return np.where(inside[:, None] & (holes[stop] - holes[start] == 0), means, np.nan)


def ground_mask(disparity: np.ndarray) -> np.ndarray:
    """R x R bool: where the surface faces up (see the module's docstring). Unknown pixels are never ground."""
    resolution = disparity.shape[0]
    w, span = window(resolution), disparity_span(disparity)
    if span <= 0:
        return np.zeros(disparity.shape, dtype=bool)
    disparity = np.asarray(disparity, dtype=np.float64)
    above, below = column_means(disparity, -w, -1), column_means(disparity, 1, w)
    half = max(1, w // 2)
    centre = column_means(disparity, -(w // 2), w // 2)
    rise_below, rise_above = below - centre, centre - above
    least = MIN_SLOPE * span / resolution * (w + 1) / 2  # a ramp of the least slope rises this much each side
    with np.errstate(invalid="ignore"):
        steady = ((rise_below > least) & (rise_above > least)
                  & (rise_below < STEADY_RATIO * rise_above) & (rise_above < STEADY_RATIO * rise_below)
                  & (above < disparity) & (disparity < below)  # the pixel itself lies on the rise ...
                  & (column_means(disparity, -half, -half) < disparity)  # ... and so do its neighbours: a thin
                  & (disparity < column_means(disparity, half, half)))  # face in a stack of faces is flat
    return steady


@dataclasses.dataclass(frozen=True)
class BackgroundGround:
    """One background's disparity, its ground pixels and their disparity range."""

    disparity: np.ndarray  # R x R float, NaN where unknown
    ground: np.ndarray  # R x R bool
    low: float  # ground disparity mapped to --scale-min (far) ...
    high: float  # ... and to --scale-max (near)
    margin: float  # disparity by which scenery must be nearer than the foot to hide the cut-out

    @classmethod
    def of(cls, disparity: np.ndarray) -> "BackgroundGround":
        disparity = np.asarray(disparity, dtype=np.float64)
        ground = ground_mask(disparity)
        low, high = (np.percentile(disparity[ground], SPAN_PERCENTILES) if ground.any() else (0.0, 0.0))
        return cls(disparity, ground, float(low), float(high), OCCLUSION_MARGIN * disparity_span(disparity))

    @functools.cached_property
    def usable(self) -> bool:
        return self.ground.mean() >= MIN_GROUND_FRACTION


def ground_scale(disparity: float | np.ndarray, low: float, high: float, scale_min: float, scale_max: float):
    """The cut-out's size at a foot of this disparity: the ground's range [low, high] mapped linearly onto
    [scale_min, scale_max] (clipped), as float32 like the `scale` column. Image size is proportional to
    1/distance, i.e. to disparity, up to the unknown shift of a relative map: so the mapping is linear in
    disparity, and only its ends are fixed by the settings."""
    if high <= low:
        return np.float32((scale_min + scale_max) / 2) + np.zeros(np.shape(disparity), dtype=np.float32)
    share = np.minimum(np.maximum((np.float64(disparity) - low) / (high - low), 0.0), 1.0)
    return np.float32(scale_min + (scale_max - scale_min) * share) if np.ndim(share) == 0 else \
        (scale_min + (scale_max - scale_min) * share).astype(np.float32)


def foot_box(foot_x: int, foot_y: int, height: int, width: int) -> tuple[int, int]:
    """(x, y) of the box whose bottom centre is the foot: the cut-out stands on it."""
    return foot_x - width // 2, foot_y - height + 1


def foot_of(placement: Placement) -> tuple[int, int]:
    """The bottom centre of a placed box (the inverse of `foot_box`)."""
    return placement.x + placement.width // 2, placement.y + placement.height - 1


@dataclasses.dataclass(frozen=True)
class GroundFeet:
    """A background's ground pixels that have a size (`scales` finite), ascending, each with its row, column and the
    cut-out's longer side there: all that `feasible` needs that does not depend on the cut-out, so a rule whose
    size law follows the background alone keeps it per background (drawn rows rarely repeat a pair)."""

    flat: np.ndarray  # flat indices into the R x R frame
    feet_y: np.ndarray  # int16
    feet_x: np.ndarray  # int16
    side: np.ndarray  # the longer side in px at each foot, less `shortest`
    shortest: int
    resolution: int

    @classmethod
    def of(cls, bg: BackgroundGround, scales: np.ndarray) -> "GroundFeet":
        resolution = bg.disparity.shape[0]
        flat = np.flatnonzero(bg.ground & np.isfinite(scales))
        feet_y, feet_x = np.divmod(flat, resolution)
        longer = np.maximum(1, np.round(scales.ravel()[flat].astype(np.float64) * resolution)).astype(np.int64)
        shortest = int(longer.min()) if longer.size else 1
        return cls(flat, feet_y.astype(np.int16), feet_x.astype(np.int16), longer - shortest, shortest, resolution)

    @property
    def nbytes(self) -> int:
        return self.flat.nbytes + self.feet_y.nbytes + self.feet_x.nbytes + self.side.nbytes

    def feasible(self, fg_height: int, fg_width: int) -> np.ndarray:
        """Flat indices (ascending) of the feet where a cut-out of this shape, at the size its foot gives, fits the
        frame: its box x = foot_x - width // 2 .. x + width and y = foot_y - height + 1 .. foot_y inside. Width and
        height are worked out once per longer side, and with them the feet's bounds; each foot is then compared."""
        if self.flat.size == 0:
            return self.flat
        sides = np.arange(self.shortest, self.shortest + int(self.side.max()) + 1, dtype=np.int64)
        if fg_width >= fg_height:
            widths, heights = sides, np.maximum(1, np.round(fg_height * sides / fg_width)).astype(np.int64)
        else:
            heights, widths = sides, np.maximum(1, np.round(fg_width * sides / fg_height)).astype(np.int64)
        least_x, most_x = (widths // 2).astype(np.int16), (self.resolution - widths + widths // 2).astype(np.int16)
        least_y = (heights - 1).astype(np.int16)
        fits = (self.feet_x >= least_x[self.side]) & (self.feet_x <= most_x[self.side])
        fits &= self.feet_y >= least_y[self.side]
        return self.flat[fits]


def nearer_scenery(bg: BackgroundGround, foot_disparity: float) -> np.ndarray:
    """R x R bool: background pixels clearly nearer than the foot (unknown pixels never are)."""
    with np.errstate(invalid="ignore"):
        return bg.disparity > foot_disparity + bg.margin


def hide(placed: np.ndarray, placement: Placement, hidden: np.ndarray) -> np.ndarray:
    """The placed premultiplied cut-out with its hidden pixels made transparent (the background shows there)."""
    box = hidden[placement.y:placement.y + placement.height, placement.x:placement.x + placement.width]
    if not box.any():
        return placed
    visible = placed.copy()
    visible[box] = 0  # a copy cleared by the mask: 1.8x np.where's speed
    return visible


def visible_fraction(footprint: np.ndarray, placement: Placement, hidden: np.ndarray) -> float:
    """Share of the footprint (the placed mask, box-sized) that no nearer scenery hides."""
    total = int(footprint.sum())
    if total == 0:
        return 1.0
    box = hidden[placement.y:placement.y + placement.height, placement.x:placement.x + placement.width]
    return float((footprint & ~box).sum()) / total


def occlusion(amodal: np.ndarray, visible: np.ndarray) -> float:
    """1 - visible / amodal mask area, as float32 (0 for an empty footprint)."""
    area = int(np.count_nonzero(amodal))
    return float(np.float32(1 - np.count_nonzero(visible) / area)) if area else 0.0
