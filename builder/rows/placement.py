"""Placement rules (`--placement-mode`): where a cut-out goes and how large it is there. Each mode is one rule behind
`PlacementRule`, chosen once from the settings (`placement_rule`); the renderer, a scene's further objects and
verify all place through it, and differ only in where its inputs come from (`PlacementInputs`: the decoded input
files, or a dataset's stored copies).

A standing rule (ground, physical) stands the cut-out on the background's ground, at the size its size law
(`StandingRule.size_law`) gives the foot. The foot is drawn uniformly, with `default_rng([seed, index, 2])` (a
stream of its own; a scene's further objects: the scene's stream), from the ground pixels where the cut-out at that
size fits the frame, and redrawn while nearer scenery leaves less than MIN_VISIBLE of it visible (at most MAX_TRIES
draws, the most visible kept). Where no foot is feasible (or the background has too little ground) the cut-out is
placed as the uniform rule places it, and says so (`mode` "uniform").
"""

from __future__ import annotations

import abc
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from builder.contract.plan import Placement, draw_placement, placed_size
from builder.contract.settings import ContentSettings, PhysicalInputs
from builder.rows.geometry import (MAX_TRIES, MIN_VISIBLE, BackgroundGround, GroundFeet, foot_box, foot_of,
                                   ground_scale, nearer_scenery, visible_fraction)

GROUND_STREAM = 2  # default_rng([seed, index, 2]): the foot draws of row `index`'s own cut-out
UNIFORM = "uniform"  # the uniform rule's mode, and a standing rule's fallback's

# (fg_id, flip, placement) -> the cut-out flipped, premultiplied and resized to the placement (RGBa uint8)
CutoutAt = Callable[[int, int, Placement], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Placed:
    """A cut-out as a rule placed it: its box, the rule (`mode`: "uniform" also for a standing rule's fallback) and,
    for a standing rule, where it stands, what hides it and its fields (builder.contract.placement_fields)."""

    placement: Placement
    mode: str
    foot: tuple[int, int] | None = None  # (x, y), the box's bottom centre (a fallback's too): standing rules only
    hidden: np.ndarray | None = None  # R x R bool: scenery nearer than the foot (None: nothing hides it)
    nearness: float = 0.0  # paste order, larger is nearer: the foot's disparity; a fallback's is inf (pasted last)
    tries: int = 0  # foot draws made
    fields: dict = dataclasses.field(default_factory=dict)  # its placed fields: foot_x, foot_y, ...


@dataclasses.dataclass(frozen=True)
class PlacementInputs:
    """What rules place by: the cut-outs' (height, width) by id, each cut-out (h x w x 4, as the row uses it,
    decoded when asked) and each at a placement, each background's ground (standing rules), the backgrounds'
    sizes and cut-outs' heights (physical), and without --focal-px each background's focal length at R as its
    `backgrounds` row stores it (a depth model's field of view)."""

    shapes: Mapping[int, tuple[int, int]] | Sequence[tuple[int, int]]
    cutout: Callable[[int], np.ndarray]
    cutout_at: CutoutAt
    ground_of: Callable[[int], BackgroundGround] | None = None
    physical: PhysicalInputs | None = None
    focal_of: Callable[[int], float] | None = None


class PlacementRule(Protocol):
    """One `--placement-mode`: row `index`'s cut-out `fg_id` (flipped or not) placed on background `bg_id`, from
    the row's own streams, or from `rng` (a scene's further objects)."""

    mode: str
    inputs: PlacementInputs

    def place(self, index: int, bg_id: int, fg_id: int, flip: int,
              rng: np.random.Generator | None = None) -> Placed: ...


class UniformRule:
    """Anywhere in the frame, any size in the scale range: `default_rng([seed, index])`, or `rng`."""

    mode = UNIFORM

    def __init__(self, settings: ContentSettings, inputs: PlacementInputs):
        self.settings, self.inputs = settings, inputs

    def place(self, index: int, bg_id: int, fg_id: int, flip: int,
              rng: np.random.Generator | None = None) -> Placed:
        s = self.settings
        return Placed(draw_placement(s.seed, index, *self.inputs.shapes[fg_id], s.resolution,
                                     s.scale_min, s.scale_max, rng=rng), UNIFORM)


class StandingRule(abc.ABC):
    """A rule that stands cut-outs on the ground (see the module's docstring); a subclass gives its size law."""

    mode: str
    sized_by: str  # what the size law follows, in words (verify's messages)

    def __init__(self, settings: ContentSettings, inputs: PlacementInputs):
        self.settings, self.inputs = settings, inputs
        self.uniform = UniformRule(settings, inputs)
        self._sized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # one background's at a time
        self._sized_bg: int | None = None

    def ground(self, bg_id: int) -> BackgroundGround:
        return self.inputs.ground_of(bg_id)

    @abc.abstractmethod
    def size_law(self, bg_id: int, fg_id: int) -> np.ndarray:
        """R x R float32: the scale (longer side / R) the cut-out takes with its foot at each pixel; NaN where
        none."""

    def fields(self, fg_id: int, foot: tuple[int, int]) -> dict:
        """The placed fields of a cut-out standing (or, a fallback, with its box's bottom centre) at `foot`."""
        return {"foot_x": foot[0], "foot_y": foot[1]}

    def ground_feet(self, bg_id: int, fg_id: int) -> tuple[np.ndarray, GroundFeet]:
        """(the size law's scales, the ground feet that have a size) of a background and cut-out."""
        scales = self.size_law(bg_id, fg_id)
        return scales, GroundFeet.of(self.ground(bg_id), scales)

    def sized(self, bg_id: int, fg_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(the size law's scales, the feasible feet) of a background and cut-out, kept for one background at a
        time (rows come background-major)."""
        key = (bg_id, fg_id)
        found = self._sized.get(key)
        if found is None:
            if self._sized_bg != bg_id:
                self._sized, self._sized_bg = {}, bg_id
            scales, feet = self.ground_feet(bg_id, fg_id)
            found = scales, feet.feasible(*self.inputs.shapes[fg_id])
            self._sized[key] = found
        return found

    def place(self, index: int, bg_id: int, fg_id: int, flip: int,
              rng: np.random.Generator | None = None) -> Placed:
        ground, (scales, feet) = self.ground(bg_id), self.sized(bg_id, fg_id)
        if ground.usable and feet.size:
            rng = np.random.default_rng([self.settings.seed, index, GROUND_STREAM]) if rng is None else rng
            return self._stand(ground, feet, scales, fg_id, flip, rng)
        placement = self.uniform.place(index, bg_id, fg_id, flip, rng).placement
        foot = foot_of(placement)
        return Placed(placement, UNIFORM, foot, None, float("inf"), 0, self.fields(fg_id, foot))

    def _stand(self, ground: BackgroundGround, feet: np.ndarray, scales: np.ndarray, fg_id: int, flip: int,
               rng: np.random.Generator) -> Placed:
        s, resolution = self.settings, ground.disparity.shape[0]
        shape = self.inputs.shapes[fg_id]
        best, best_visible = None, -1.0
        for tries in range(1, MAX_TRIES + 1):
            foot_y, foot_x = divmod(int(feet[int(rng.integers(0, feet.size))]), resolution)
            foot_disparity = float(ground.disparity[foot_y, foot_x])
            scale = float(scales[foot_y, foot_x])
            height, width = placed_size(scale, *shape, resolution)
            placement = Placement(*foot_box(foot_x, foot_y, height, width), scale, width, height)
            hidden = nearer_scenery(ground, foot_disparity)
            alpha = self.inputs.cutout_at(fg_id, flip, placement)[..., 3]
            visible = visible_fraction(alpha >= s.mask_threshold, placement, hidden)
            if visible > best_visible:
                best, best_visible = Placed(placement, self.mode, (foot_x, foot_y), hidden, foot_disparity, tries,
                                            self.fields(fg_id, (foot_x, foot_y))), visible
            if visible >= MIN_VISIBLE:
                break
        return dataclasses.replace(best, tries=tries)


class GroundRule(StandingRule):
    """`ground`: the size rises with the foot's disparity, the background's ground disparity range mapped linearly
    onto the scale range (builder.rows.geometry.ground_scale)."""

    mode, sized_by = "ground", "the foot's disparity"
    KEPT_BYTES = 64 * 2 ** 20  # the backgrounds' ground feet kept, least recently used dropped first

    def __init__(self, settings: ContentSettings, inputs: PlacementInputs):
        super().__init__(settings, inputs)
        self._feet: OrderedDict[int, tuple[np.ndarray, GroundFeet]] = OrderedDict()
        self._feet_bytes = 0

    def size_law(self, bg_id: int, fg_id: int) -> np.ndarray:
        ground, s = self.ground(bg_id), self.settings
        return ground_scale(ground.disparity, ground.low, ground.high, s.scale_min, s.scale_max)

    def ground_feet(self, bg_id: int, fg_id: int) -> tuple[np.ndarray, GroundFeet]:
        """The size law follows the background alone: its scales and feet are kept per background (bounded by
        KEPT_BYTES), so a row whose pair is new pays only `GroundFeet.feasible`."""
        found = self._feet.get(bg_id)
        if found is not None:
            self._feet.move_to_end(bg_id)
            return found
        found = self._feet[bg_id] = super().ground_feet(bg_id, fg_id)
        self._feet_bytes += found[0].nbytes + found[1].nbytes
        while self._feet_bytes > self.KEPT_BYTES and len(self._feet) > 1:
            scales, feet = self._feet.popitem(last=False)[1]
            self._feet_bytes -= scales.nbytes + feet.nbytes
        return found


def focal_at(focal_px: float, bg_size: tuple[int, int], resolution: int) -> float:
    """f_R: the focal length in pixels at R of a background `bg_size` (width, height) pixels large with focal length
    `focal_px`: it is centre-cropped to its shorter side, which is then resized to R."""
    return focal_px * resolution / min(bg_size)


def opaque_rows(opaque: np.ndarray) -> int:
    """Rows from the first to the last that hold an opaque pixel (`opaque`: bool, alpha >= the mask threshold): the
    height of a cut-out's opaque part."""
    rows = np.flatnonzero(opaque.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


NEAREST_FIRST = np.array([0, -1, 1, -2, 2])  # longer sides tried around the ideal one, in order of preference


class PhysicalRule(StandingRule):
    """`physical`: the cut-out's opaque part stands f_R * H / Z_foot pixels tall: f_R the background's focal length
    at R (`focal`), H the cut-out's real height in metres, Z_foot the metric depth at the foot (the map's
    disparity is in 1/metres). The ideal size follows from the cut-out's opaque rows; feet where it falls outside
    the scale range are never drawn, like feet where the cut-out does not fit the frame. Of the whole longer sides
    next to the ideal one, the one whose resized opaque part comes nearest f_R * H / Z_foot is taken: resizing thins
    a cut-out's soft or pointed ends by a pixel or two, which at small sizes is more than rounding alone."""

    mode, sized_by = "physical", "f_R * height_m / Z_foot"

    def __init__(self, settings: ContentSettings, inputs: PlacementInputs):
        super().__init__(settings, inputs)
        self._opaque: dict[int, np.ndarray] = {}
        self._proportions: dict[int, tuple[int, int]] = {}

    def focal(self, bg_id: int) -> float:
        """f_R: from --focal-px, which wins (`focal_at`), else the background's stored focal length at R, which the
        depth model's predicted field of view gave (already at R: no crop or resize to account for)."""
        s = self.settings
        if s.focal_px is not None:
            return focal_at(s.focal_px, self.inputs.physical.bg_sizes[bg_id], s.resolution)
        return float(self.inputs.focal_of(bg_id))

    def height_m(self, fg_id: int) -> float:
        """The cut-out's height as its rows store it (float32), which its size follows."""
        return float(np.float32(self.inputs.physical.fg_heights_m[fg_id]))

    def longer_sides(self) -> np.ndarray:
        """The whole longer sides, in pixels, of the scale range."""
        s = self.settings
        return np.arange(max(1, round(s.scale_min * s.resolution)), round(s.scale_max * s.resolution) + 1)

    def opaque_heights(self, fg_id: int) -> np.ndarray:
        """The cut-out's opaque rows resized to each of `longer_sides` (kept per cut-out)."""
        found = self._opaque.get(fg_id)
        if found is None:
            s, shape = self.settings, self.inputs.shapes[fg_id]
            found = np.zeros(len(self.longer_sides()), dtype=np.float64)
            for k, side in enumerate(self.longer_sides()):
                scale = float(np.float32(side / s.resolution))
                height, width = placed_size(scale, *shape, s.resolution)
                alpha = self.inputs.cutout_at(fg_id, 0, Placement(0, 0, scale, width, height))[..., 3]
                found[k] = opaque_rows(alpha >= s.mask_threshold)
            self._opaque[fg_id] = found
        return found

    def proportions(self, fg_id: int) -> tuple[int, int]:
        """The cut-out's longer side and opaque rows at its own size (kept per cut-out: drawn rows rarely repeat a
        pair, and the cut-out need not be decoded again for each)."""
        found = self._proportions.get(fg_id)
        if found is None:
            alpha = self.inputs.cutout(fg_id)[..., 3]
            found = self._proportions[fg_id] = (max(alpha.shape), opaque_rows(alpha >= self.settings.mask_threshold))
        return found

    def size_law(self, bg_id: int, fg_id: int) -> np.ndarray:
        s, ground, (longer, opaque) = self.settings, self.ground(bg_id), self.proportions(fg_id)
        target = (self.focal(bg_id) * self.height_m(fg_id) * ground.disparity).ravel()  # f_R * H / Z px, NaN: unknown
        ideal = target * longer / opaque
        with np.errstate(invalid="ignore"):
            feet = np.flatnonzero(ground.ground.ravel() & (ideal >= s.scale_min * s.resolution)
                                  & (ideal <= s.scale_max * s.resolution))
        sides = self.longer_sides()
        tried = np.clip(np.rint(ideal[feet])[:, None] + NEAREST_FIRST, sides[0], sides[-1]).astype(np.int64)
        misses = np.abs(self.opaque_heights(fg_id)[tried - sides[0]] - target[feet][:, None])
        chosen = tried[np.arange(feet.size), misses.argmin(axis=1)]
        scales = np.full(target.size, np.nan, dtype=np.float32)
        scales[feet] = (chosen / s.resolution).astype(np.float32)
        return scales.reshape(ground.disparity.shape)

    def fields(self, fg_id: int, foot: tuple[int, int]) -> dict:
        return {**super().fields(fg_id, foot), "height_m": self.height_m(fg_id)}


RULES = {rule.mode: rule for rule in (UniformRule, GroundRule, PhysicalRule)}  # --placement-mode -> its rule


def placement_rule(settings: ContentSettings, inputs: PlacementInputs) -> PlacementRule:
    return RULES[settings.placement_mode](settings, inputs)
