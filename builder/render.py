"""Rows as pure functions of their index and the inputs: one renderer per config. Each renderer adds its images'
exact statistics to a `StatsBook` keyed by column, and returns the image the depth model sees (None where its
rows have no depth)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from builder.assets import Inputs
from builder.augment import augmented_composite, draw_augmentation
from builder.composite import ForegroundCache, composite, mask_bbox, placed_mask
from builder.encode import decode, decode_image, encode_jpeg, encode_png, image_cell
from builder.plan import SampleSpace, SplitPlan, draw_placement
from builder.settings import ContentSettings
from builder.stats import StatsBook, binary_mask_moments, moments_from_histogram

Rendered = tuple[dict, "np.ndarray | None"]


@dataclasses.dataclass(frozen=True)
class RenderContext:
    """What every row is a function of: the content settings and the decoded inputs."""

    settings: ContentSettings
    inputs: Inputs

    @functools.cached_property
    def space(self) -> SampleSpace:
        return SampleSpace(len(self.inputs.backgrounds), len(self.inputs.foregrounds), self.settings.placements)

    @functools.cached_property
    def plan(self) -> SplitPlan:
        s = self.settings
        return SplitPlan.from_counts(self.space, s.seed, s.validation_backgrounds, s.validation_foregrounds)

    @functools.cached_property
    def foreground_cache(self) -> ForegroundCache:
        """Foregrounds premultiplied once per flip, and resized once per size (bounded memory)."""
        return ForegroundCache(self.inputs.foregrounds)


def render_sample(ctx: RenderContext, index: int, stats: StatsBook) -> Rendered:
    settings = ctx.settings
    bg_id, fg_id, flip, _ = ctx.space.decompose(index)
    foreground = ctx.inputs.foregrounds[fg_id]
    placement = draw_placement(settings.seed, index, *foreground.shape[:2], settings.resolution,
                               settings.scale_min, settings.scale_max)
    placed = ctx.foreground_cache.placed(fg_id, flip, placement)
    background = ctx.inputs.backgrounds[bg_id]
    pixels = settings.resolution * settings.resolution
    if settings.with_augment:
        image, mask, extra = _augmented(settings, index, background, placed, placement, stats)
    else:
        image, extra = composite(background, placed, placement), {}
        mask = placed_mask(placed, placement, settings.resolution, settings.mask_threshold)
    jpeg = encode_jpeg(image, settings.jpeg_quality)
    stored = decode_image(jpeg)  # depth and statistics see the composite exactly as users will
    png = encode_png(mask)
    row = {"fg_bg": image_cell(jpeg), "mask": image_cell(png), "sample_id": index, "bg_id": bg_id,
           "fg_id": fg_id, "flip": bool(flip), "x": placement.x, "y": placement.y, "scale": placement.scale,
           "bbox": mask_bbox(mask), **extra}
    stats["fg_bg"].add_moments(*moments_from_histogram(stored.histogram(), 3), pixels, len(jpeg))
    stats["mask"].add_moments(*binary_mask_moments(mask), pixels, len(png))
    return row, (np.asarray(stored) if settings.with_depth else None)


def _augmented(settings: ContentSettings, index: int, background: np.ndarray, placed: np.ndarray,
               placement, stats: StatsBook) -> tuple[np.ndarray, np.ndarray, dict]:
    """(composite, mask, the `alpha` cell and parameter columns) of an augmented sample."""
    params = draw_augmentation(settings, index, placement)
    image, alpha = augmented_composite(background, placed, placement, params, settings.mask_threshold)
    mask = np.where(alpha >= settings.mask_threshold, 255, 0).astype(np.uint8)
    alpha_png = encode_png(alpha)
    stats["alpha"].add(alpha, len(alpha_png))
    return image, mask, {"alpha": image_cell(alpha_png), **params.columns()}


def render_background(ctx: RenderContext, bg_id: int, stats: StatsBook) -> Rendered:
    jpeg = encode_jpeg(ctx.inputs.backgrounds[bg_id], ctx.settings.jpeg_quality)
    stored = decode(jpeg)
    stats["image"].add(stored, len(jpeg))
    row = {"bg_id": bg_id, "image": image_cell(jpeg), "source": ctx.inputs.bg_files[bg_id].name}
    return row, (stored if ctx.settings.with_depth else None)


def render_foreground(ctx: RenderContext, fg_id: int, stats: StatsBook) -> Rendered:
    rgba = ctx.inputs.foregrounds[fg_id]
    mask = np.where(rgba[..., 3] >= ctx.settings.mask_threshold, 255, 0).astype(np.uint8)
    image, mask_png = encode_png(rgba), encode_png(mask)
    stats["image"].add(rgba, len(image))
    stats["mask"].add(mask, len(mask_png))
    return {"fg_id": fg_id, "image": image_cell(image), "mask": image_cell(mask_png),
            "source": ctx.inputs.fg_files[fg_id].name}, None
