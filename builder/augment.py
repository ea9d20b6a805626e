"""Realistic composites (`--augment realistic`): each perturbation a pure, deterministic function of uint8 pixels
and its drawn parameters, used by the renderer and by verify alike.

Per sample, over the full R x R frame: the background is colour-jittered, shifted (reflected border), blurred
and given gaussian noise; the cut-out is rotated about its box's centre, colour-jittered, harmonised toward the
local background's luminance, and its edge blended (own alpha, hard, feathered or motion-blurred); a soft
shadow (its final alpha, offset and blurred) darkens the background; then alpha-over. The final alpha depends
on the cut-out and the parameters only, never on the background, so verify re-derives it exactly.

Foreground layers are premultiplied RGBa uint8 arrays of the full frame (colour <= alpha).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageFilter

from builder.composite import composite
from builder.plan import Placement
from builder.settings import ContentSettings

LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------- pixels

def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma as float32, elementwise (no BLAS: the same bits on every machine and thread count)."""
    x = rgb.astype(np.float32)
    return x[..., 0] * np.float32(LUMA[0]) + x[..., 1] * np.float32(LUMA[1]) + x[..., 2] * np.float32(LUMA[2])


def shift_hue(rgb: np.ndarray, hue: float) -> np.ndarray:
    """Hue rotated by `hue` turns (PIL's 8-bit HSV: steps of 1/256 turn)."""
    steps = int(round(hue * 256)) % 256
    if steps == 0:
        return rgb.copy()
    hsv = np.array(Image.fromarray(rgb, "RGB").convert("HSV"))
    hsv[..., 0] += np.uint8(steps)  # wraps modulo 256: the hue circle
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def color_jitter(rgb: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float,
                 weight: np.ndarray | None = None) -> np.ndarray:
    """Brightness (scale), contrast (about the mean luma, weighted by `weight` if given), saturation (about each
    pixel's luma), then a hue shift in turns. Identity at (1, 1, 1, 0)."""
    x = rgb.astype(np.float32) * np.float32(brightness)
    grey = luminance(x)
    mean = grey.mean() if weight is None else (grey * weight).sum() / max(float(weight.sum()), 1e-6)
    x = (x - np.float32(mean)) * np.float32(contrast) + np.float32(mean)
    grey = luminance(x)[..., None]
    x = grey + (x - grey) * np.float32(saturation)
    return shift_hue(np.clip(np.rint(x), 0, 255).astype(np.uint8), hue)


def shift_reflect(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by dx and down by dy; the uncovered border mirrored from the image (no new colours)."""
    if dx == 0 and dy == 0:
        return image.copy()
    pad = ((abs(dy), abs(dy)), (abs(dx), abs(dx))) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, pad, mode="reflect")
    h, w = image.shape[:2]
    return np.ascontiguousarray(padded[abs(dy) - dy:abs(dy) - dy + h, abs(dx) - dx:abs(dx) - dx + w])


def shift_zero(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by dx and down by dy; the uncovered border zero (for layers and alphas)."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                      max(-dx, 0):w - max(dx, 0)]
    return out


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """PIL's gaussian blur (standard deviation `sigma` px) of an L, RGB or RGBa array; identity at 0."""
    if sigma <= 0:
        return image.copy()
    mode = {1: "L", 3: "RGB", 4: "RGBa"}[1 if image.ndim == 2 else image.shape[2]]
    return np.asarray(Image.fromarray(image, mode).filter(ImageFilter.GaussianBlur(float(sigma))))


def add_noise(rgb: np.ndarray, sigma: float, noise_seed: int) -> np.ndarray:
    """Gaussian noise of `sigma` levels, its field drawn from `default_rng(noise_seed)` alone."""
    if sigma <= 0:
        return rgb.copy()
    noise = np.random.default_rng(noise_seed).standard_normal(rgb.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.rint(rgb.astype(np.float32) + noise), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- layers

def full_frame(placed: np.ndarray, placement: Placement, resolution: int) -> np.ndarray:
    """The placed premultiplied cut-out on a transparent R x R layer."""
    layer = np.zeros((resolution, resolution, 4), dtype=np.uint8)
    layer[placement.y:placement.y + placement.height, placement.x:placement.x + placement.width] = placed
    return layer


def rotate_layer(layer: np.ndarray, angle: float, center: tuple[float, float]) -> np.ndarray:
    """Rotated counter-clockwise by `angle` degrees about `center` (x, y), bilinear in premultiplied alpha
    (no dark fringes); whatever leaves the frame is cut off."""
    if angle == 0:
        return layer.copy()
    image = Image.fromarray(layer, "RGBa")
    return np.asarray(image.rotate(float(angle), Image.Resampling.BILINEAR, center=center))


def with_alpha(layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The layer's straight colour under a new alpha (which must be 0 wherever the old one is)."""
    straight = np.array(Image.fromarray(layer, "RGBa").convert("RGBA"))
    straight[..., 3] = alpha
    return np.asarray(Image.fromarray(straight, "RGBA").convert("RGBa"))


def hard_edge(layer: np.ndarray, threshold: int) -> np.ndarray:
    """Alpha thresholded to 0/255 at `threshold`: a cut with scissors, no soft edge."""
    return with_alpha(layer, np.where(layer[..., 3] >= threshold, 255, 0).astype(np.uint8))


def feather_edge(layer: np.ndarray, sigma: float) -> np.ndarray:
    """Alpha blurred by `sigma` px, kept inside the cut-out (min with the own alpha, so colour stays defined)."""
    return with_alpha(layer, np.minimum(layer[..., 3], gaussian_blur(layer[..., 3], sigma)))


def motion_blur(layer: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Mean of `length` copies along direction `angle` (degrees, counter-clockwise from +x), centred: a short
    linear motion of the cut-out, colour and alpha together (integer arithmetic, rounded)."""
    if length <= 1:
        return layer.copy()
    theta = np.deg2rad(angle)
    total = np.zeros(layer.shape, dtype=np.uint32)
    for step in range(length):
        d = step - (length - 1) / 2
        total += shift_zero(layer, int(round(d * np.cos(theta))), int(round(-d * np.sin(theta))))
    return ((total + length // 2) // length).astype(np.uint8)


def jitter_layer(layer: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float,
                 gain: float = 1.0) -> np.ndarray:
    """Colour jitter of the cut-out's straight colour (contrast about its alpha-weighted mean), times `gain`;
    alpha unchanged."""
    straight = np.array(Image.fromarray(layer, "RGBa").convert("RGBA"))
    weight = straight[..., 3].astype(np.float32)
    straight[..., :3] = color_jitter(straight[..., :3], brightness * gain, contrast, saturation, hue, weight)
    return np.asarray(Image.fromarray(straight, "RGBA").convert("RGBa"))


def harmonize_gain(layer: np.ndarray, background: np.ndarray, strength: float) -> float:
    """Brightness gain moving the cut-out's mean luma `strength` of the way toward the mean luma of the
    background under its box; within [0.5, 2]."""
    alpha = layer[..., 3]
    if strength <= 0 or not alpha.any():
        return 1.0
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    local = float(luminance(background[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]).mean())
    straight = np.asarray(Image.fromarray(layer, "RGBa").convert("RGBA"))
    weight = alpha.astype(np.float32)
    own = float((luminance(straight[..., :3]) * weight).sum() / weight.sum())
    return float(np.clip(1 + strength * (local / max(own, 1.0) - 1), 0.5, 2.0))


def cast_shadow(background: np.ndarray, alpha: np.ndarray, dx: int, dy: int, sigma: float,
                opacity: float) -> np.ndarray:
    """The background darkened by the alpha moved by (dx, dy) and blurred: at most `opacity` of its light."""
    if opacity <= 0:
        return background.copy()
    shade = gaussian_blur(shift_zero(alpha, dx, dy), sigma).astype(np.float32) * np.float32(opacity / 255)
    return np.clip(np.rint(background.astype(np.float32) * (1 - shade)[..., None]), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- one sample

@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One sample's drawn parameters; the field names are the `default` config's augmentation columns."""

    bg_brightness: float
    bg_contrast: float
    bg_saturation: float
    bg_hue: float
    bg_dx: int
    bg_dy: int
    bg_blur_sigma: float
    bg_noise_sigma: float
    noise_seed: int
    fg_angle: float
    fg_brightness: float
    fg_contrast: float
    fg_saturation: float
    fg_hue: float
    harmonize_strength: float
    blend: str
    feather_sigma: float
    motion_length: int
    motion_angle: float
    shadow_opacity: float
    shadow_dx: int
    shadow_dy: int
    shadow_sigma: float

    @classmethod
    def from_row(cls, row: dict) -> "Augmentation":
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def columns(self) -> dict:
        return dataclasses.asdict(self)


def _f32(value: float) -> float:
    """Exactly representable in float32, the columns' type, so a stored row re-derives the same pixels."""
    return float(np.float32(value))


def draw_augmentation(s: ContentSettings, index: int, placement: Placement) -> Augmentation:
    """Sample `index`'s parameters from its own stream `default_rng([seed, index, 1])`, so placements stay those
    of `--augment none`. Every part is drawn even when off (its range is then the identity): turning one part
    off leaves the others' draws unchanged."""
    rng = np.random.default_rng([s.seed, index, 1])

    def jitter(strength: float) -> list[float]:
        return [_f32(rng.uniform(1 - strength, 1 + strength)) for _ in range(3)] + \
            [_f32(rng.uniform(-strength / 10, strength / 10))]

    bg, fg = jitter(s.bg_jitter), jitter(s.fg_jitter)
    bg_dx, bg_dy = (int(v) for v in rng.integers(-s.bg_shift, s.bg_shift + 1, size=2))
    bg_blur, bg_noise = _f32(rng.uniform(0, s.bg_blur)), _f32(rng.uniform(0, s.bg_noise))
    noise_seed = int(rng.integers(0, 2 ** 63 - 1))
    angle, harmonize = _f32(rng.uniform(-s.fg_rotation, s.fg_rotation)), _f32(rng.uniform(0, s.harmonize))
    blend = str(rng.choice(s.blend_mode_list))
    feather = _f32(rng.uniform(0.5, max(s.feather, 0.5)))
    length, motion_angle = int(rng.integers(2, max(s.motion, 2) + 1)), _f32(rng.uniform(0, 180))
    longer = max(placement.width, placement.height)
    reach = max(1, round(0.08 * longer))  # shadow offset and softness follow the cut-out's size
    opacity = _f32(rng.uniform(0, s.shadow))
    shadow_dx, shadow_dy = int(rng.integers(-reach, reach + 1)), int(rng.integers(0, reach + 1))
    shadow_sigma = _f32(rng.uniform(0.5, 0.5 + reach))
    return Augmentation(*bg, bg_dx, bg_dy, bg_blur, bg_noise, noise_seed, angle, *fg, harmonize, blend,
                        feather if blend == "feather" else 0.0, length if blend == "motion" else 0,
                        motion_angle if blend == "motion" else 0.0, opacity, shadow_dx, shadow_dy, shadow_sigma)


def perturb_background(background: np.ndarray, p: Augmentation) -> np.ndarray:
    """The background as the composite shows it (the stored `backgrounds` image stays the clean crop)."""
    image = shift_reflect(background, p.bg_dx, p.bg_dy)
    image = color_jitter(image, p.bg_brightness, p.bg_contrast, p.bg_saturation, p.bg_hue)
    return add_noise(gaussian_blur(image, p.bg_blur_sigma), p.bg_noise_sigma, p.noise_seed)


def blend_edge(layer: np.ndarray, p: Augmentation, threshold: int) -> np.ndarray:
    if p.blend == "hard":
        return hard_edge(layer, threshold)
    if p.blend == "feather":
        return feather_edge(layer, p.feather_sigma)
    if p.blend == "motion":
        return motion_blur(layer, p.motion_length, p.motion_angle)
    return layer


def augmented_composite(background: np.ndarray, placed: np.ndarray, placement: Placement, p: Augmentation,
                        threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """(composite, final alpha) of one sample. Colour is jittered before the edge blend (a motion blur smears
    the jittered colour); the final alpha comes from the cut-out, rotation and edge blend alone."""
    resolution = background.shape[0]
    scene = perturb_background(background, p)
    centre = (placement.x + placement.width / 2, placement.y + placement.height / 2)
    layer = rotate_layer(full_frame(placed, placement, resolution), p.fg_angle, centre)
    gain = harmonize_gain(layer, scene, p.harmonize_strength)
    layer = jitter_layer(layer, p.fg_brightness, p.fg_contrast, p.fg_saturation, p.fg_hue, gain)
    layer = blend_edge(layer, p, threshold)
    scene = cast_shadow(scene, layer[..., 3], p.shadow_dx, p.shadow_dy, p.shadow_sigma, p.shadow_opacity)
    return composite(scene, layer, Placement(0, 0, 1.0, resolution, resolution)), np.ascontiguousarray(layer[..., 3])
