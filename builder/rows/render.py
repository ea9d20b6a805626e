"""Rows as pure functions of their index and the inputs: one renderer per config. Each renderer adds its images'
exact statistics to a `StatsBook` keyed by column, and returns the image the depth model sees (None where its
rows have no depth)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from builder.contract import given_depth as given
from builder.contract.plan import SplitPlan
from builder.contract.settings import ContentSettings
from builder.rows.assets import Inputs
from builder.rows.augment import augmented_composite, draw_augmentation
from builder.rows.bg_depth import given_depth_cells, given_depth_of
from builder.rows.cache import INPUT_CACHE_BYTES, LruCache
from builder.rows.composite import ForegroundCache, composite, mask_bbox, placed_mask
from builder.rows.encode import decode, decode_jpeg, encode_jpeg, encode_png, image_cell
from builder.rows.geometry import BackgroundGround, hide, occlusion
from builder.rows.pixels import InputPixels
from builder.rows.placement import Placed, PlacementInputs, PlacementRule, placement_rule
from builder.rows.scene import binary, derive_scene, object_cells, scene_object
from builder.rows.stats import StatsBook, binary_mask_moments, label_mask_moments, moments_from_histogram

Rendered = tuple[dict, "np.ndarray | None"]


@dataclasses.dataclass(frozen=True)
class RenderContext:
    """What every row is a function of: the content settings and the inputs, as records. Each process decodes the
    pixels its rows need on first use and keeps at most `cache_bytes` of them (builder.rows.pixels); worker
    processes get this context pickled, so it holds no pixels."""

    settings: ContentSettings
    inputs: Inputs
    # ground: bg_id -> the disparity of its stored depth (the --bg-depth-dir map's, else the model's), read back when
    # needed
    stored_bg_depth: Callable[[int], np.ndarray] | None = None
    # physical without --focal-px: bg_id -> its stored focal length at R (the depth model's field of view)
    stored_bg_focal: Callable[[int], float] | None = None
    cache_bytes: int = INPUT_CACHE_BYTES

    @functools.cached_property
    def plan(self) -> SplitPlan:
        """Which inputs every sample uses (`SplitPlan.inputs_of`) and which split it is in."""
        return self.settings.split_plan(len(self.inputs.bg_files), len(self.inputs.cutouts))

    @functools.cached_property
    def categories(self) -> list[str | None] | None:
        """Each cut-out's category, by fg_id; None when the run has no categories (no category columns)."""
        return [c.category for c in self.inputs.cutouts] if self.inputs.with_categories else None

    @functools.cached_property
    def pixels(self) -> InputPixels:
        """This process's decoded inputs (bounded by `cache_bytes`)."""
        return InputPixels(self.inputs, self.settings, LruCache(self.cache_bytes))

    @functools.cached_property
    def foreground_cache(self) -> ForegroundCache:
        """Foregrounds premultiplied once per flip, and resized once per size (bounded memory)."""
        return ForegroundCache(self.pixels.decode_cutout, self.pixels.cache)

    def background_ground(self, bg_id: int) -> BackgroundGround:
        """The background's ground, from the demo's maps, else its stored depth (--bg-depth-dir's, or the model's);
        kept in the process's cache with the decoded inputs."""
        def make() -> tuple[BackgroundGround, int]:
            if self.inputs.bg_depths is not None:
                disparity = self.inputs.bg_depths[bg_id]
            elif self.stored_bg_depth is not None:
                disparity = self.stored_bg_depth(bg_id)
            else:
                raise RuntimeError("ground placement before the backgrounds' stored depth was read")
            ground = BackgroundGround.of(disparity)
            return ground, ground.disparity.nbytes + ground.ground.nbytes

        return self.pixels.cache.get(("ground", bg_id), make)

    def background_focal(self, bg_id: int) -> float:
        """The background's stored focal length at R, kept in the process's cache with its ground."""
        return self.pixels.cache.get(("focal", bg_id), lambda: (self.stored_bg_focal(bg_id), 8))

    @functools.cached_property
    def foreground_shapes(self) -> list[tuple[int, int]]:
        """Each cut-out's (height, width), by fg_id, as the survey found it (nothing decoded)."""
        return [cutout.shape for cutout in self.inputs.cutouts]

    @functools.cached_property
    def split_foregrounds(self) -> dict[str, tuple[int, ...]]:
        """Split -> its cut-outs (a scene's further objects come from its row's split only)."""
        return {split: self.plan.foregrounds(split) for split in self.plan.splits}

    @functools.cached_property
    def rule(self) -> PlacementRule:
        """The placement rule, over the cut-outs (decoded on use) and the backgrounds' ground."""
        focal_of = self.background_focal if self.stored_bg_focal is not None else None
        return placement_rule(self.settings, PlacementInputs(self.foreground_shapes, self.pixels.cutout,
                                                             self.foreground_cache.placed, self.background_ground,
                                                             self.inputs.physical, focal_of))


def render_sample(ctx: RenderContext, index: int, stats: StatsBook) -> Rendered:
    settings = ctx.settings
    bg_id, fg_id, flip = ctx.plan.inputs_of(index)
    where = ctx.rule.place(index, bg_id, fg_id, flip)
    placement = where.placement
    placed = ctx.foreground_cache.placed(fg_id, flip, placement)
    background = ctx.pixels.background(bg_id)
    pixels = settings.resolution * settings.resolution
    if settings.with_objects:
        image, mask, amodal, first, extra = _scene(ctx, index, (bg_id, fg_id, flip), where, stats)
    elif settings.with_augment:
        image, mask, amodal, extra = _augmented(settings, index, background, placed, where, stats)
    else:
        visible = hide(placed, placement, where.hidden) if where.hidden is not None else placed
        image, extra = composite(background, visible, placement), {}
        mask = placed_mask(visible, placement, settings.resolution, settings.mask_threshold)
        amodal = placed_mask(placed, placement, settings.resolution, settings.mask_threshold) \
            if visible is not placed else mask
    if not settings.with_objects:
        first = mask  # object 1's visible pixels: the top-level columns describe it
    if where.foot is not None:
        extra.update(_ground_columns(where, first, amodal, stats))
    jpeg = encode_jpeg(image, settings.jpeg_quality)
    stored = decode_jpeg(jpeg, image.shape[1::-1])  # depth and statistics see the composite as users will
    png = encode_png(mask)
    row = {"fg_bg": image_cell(jpeg), "mask": image_cell(png), "sample_id": index, "bg_id": bg_id,
           "fg_id": fg_id, "flip": bool(flip), "x": placement.x, "y": placement.y, "scale": placement.scale,
           "bbox": mask_bbox(first), **extra}
    if ctx.categories is not None:
        row["category"] = ctx.categories[fg_id]
    stats["fg_bg"].add_moments(*moments_from_histogram(stored.histogram(), 3), pixels, len(jpeg))
    stats["mask"].add_moments(*binary_mask_moments(mask), pixels, len(png))
    return row, (np.asarray(stored) if settings.with_depth else None)


def _scene(ctx: RenderContext, index: int, inputs: tuple[int, int, int], where: Placed,
           stats: StatsBook) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """(composite, union mask, object 1's footprint, object 1's visible pixels, the instance columns, and with
    `--augment` the composed alpha and object 1's parameters) of a several-object row (`inputs`: its bg_id, fg_id
    and flip): masks as uint8 0/255."""
    s, (bg_id, fg_id, flip) = ctx.settings, inputs
    params = draw_augmentation(s, index, where.placement) if s.with_augment else None
    scene, images = derive_scene(s, index, scene_object(fg_id, flip, where, params), ctx.pixels.background(bg_id),
                                 ctx.split_foregrounds[ctx.plan.sample_split(index)], ctx.rule, bg_id)
    png = encode_png(images.instances)
    areas = [int(np.count_nonzero(layer)) for layer in images.visible]
    stats["instance_mask"].add_moments(*label_mask_moments(areas), images.instances.size, len(png))
    first, amodal = binary(images.visible[0]), binary(images.footprints[0])
    columns = {"instance_mask": image_cell(png), "objects": object_cells(scene, images, ctx.categories),
               "objects_redrawn": scene.redrawn, "objects_dropped": scene.dropped}
    if params is not None:
        alpha_png = encode_png(images.alpha)
        stats["alpha"].add(images.alpha, len(alpha_png))
        columns.update(alpha=image_cell(alpha_png), **params.columns())
    return images.image, images.mask, amodal, first, columns


def _ground_columns(where: Placed, mask: np.ndarray, amodal: np.ndarray, stats: StatsBook) -> dict:
    """The scene-geometry columns of a row placed by a standing rule (a uniform fallback row: its box's bottom
    centre, nothing hidden)."""
    png = encode_png(amodal)
    stats["amodal_mask"].add_moments(*binary_mask_moments(amodal), amodal.size, len(png))
    return {"amodal_mask": image_cell(png), "amodal_bbox": mask_bbox(amodal), "occlusion": occlusion(amodal, mask),
            **where.fields, "placement_mode": where.mode}


def _augmented(settings: ContentSettings, index: int, background: np.ndarray, placed: np.ndarray, where: Placed,
               stats: StatsBook) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(composite, mask, amodal mask, the `alpha` cell and parameter columns) of an augmented sample; standing,
    the shadow falls from the foot and `alpha` is the visible part."""
    placement, hidden = where.placement, where.hidden
    params = draw_augmentation(settings, index, placement)
    image, alpha = augmented_composite(background, placed, placement, params, settings.mask_threshold, hidden,
                                       where.foot)
    amodal = binary(alpha >= settings.mask_threshold)
    if hidden is not None:
        alpha = alpha * ~hidden
    mask = binary(alpha >= settings.mask_threshold)
    alpha_png = encode_png(alpha)
    stats["alpha"].add(alpha, len(alpha_png))
    return image, mask, amodal, {"alpha": image_cell(alpha_png), **params.columns()}


def render_background(ctx: RenderContext, bg_id: int, stats: StatsBook) -> Rendered:
    """The background as stored and, with --bg-depth-dir, its given map as placement reads it back."""
    jpeg = encode_jpeg(ctx.pixels.background(bg_id), ctx.settings.jpeg_quality)
    stored = decode(jpeg)
    stats["image"].add(stored, len(jpeg))
    row = {"bg_id": bg_id, "image": image_cell(jpeg), "source": ctx.inputs.bg_files[bg_id].name}
    if ctx.inputs.stores_given_depth:
        s, inputs = ctx.settings, ctx.inputs
        map_ = given_depth_of(inputs.bg_depth_files[bg_id], s.bg_depth_kind, s.resolution)
        row.update(given_depth_cells(map_))
        stats[given.COLUMN].add(map_.levels, len(row[given.COLUMN]["bytes"]))
    return row, (stored if ctx.settings.with_depth else None)


def render_foreground(ctx: RenderContext, fg_id: int, stats: StatsBook) -> Rendered:
    rgba, cutout = ctx.pixels.decode_cutout(fg_id), ctx.inputs.cutouts[fg_id]
    mask = np.where(rgba[..., 3] >= ctx.settings.mask_threshold, 255, 0).astype(np.uint8)
    image, mask_png = encode_png(rgba), encode_png(mask)
    stats["image"].add(rgba, len(image))
    stats["mask"].add(mask, len(mask_png))
    row = {"fg_id": fg_id, "image": image_cell(image), "mask": image_cell(mask_png), "source": cutout.name}
    if ctx.categories is not None:
        row.update(category=cutout.category, category_id=cutout.category_id)
    if cutout.annotation_id is not None:
        row["annotation_id"] = cutout.annotation_id
    return row, None
