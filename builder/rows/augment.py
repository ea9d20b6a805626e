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
import functools
import math

import numpy as np
from PIL import Image, ImageFilter

from builder.contract.plan import Placement
from builder.contract.augment_fields import OBJECT_AUGMENT_FIELDS
from builder.contract.settings import ContentSettings
from builder.rows.composite import paste_over
from builder.rows.geometry import hide

LUMA = (0.299, 0.587, 0.114)
NOISE_SIDE = 1024
_LEVELS = np.arange(256, dtype=np.int64)


# --------------------------------------------------------------------------------------------- pixels

def mean_luma(image: Image.Image) -> float:
    """Mean of PIL's 8-bit luma (ITU-R 601) of an RGB image, from its histogram (no copy to numpy)."""
    histogram = np.asarray(image.convert("L").histogram(), dtype=np.int64)
    return int(histogram @ _LEVELS) / max(int(histogram.sum()), 1)


def layer_luma(layer: np.ndarray, colour: Image.Image | None = None) -> float:
    """Alpha-weighted mean luma of a premultiplied layer's colour (`colour`: its RGB as an image, if at hand):
    luma is linear, so it is the premultiplied colour's luma summed over the alpha summed (no unpremultiplying)."""
    if colour is None:
        colour = layer_colour(layer)
    grey = int(np.asarray(colour.convert("L").histogram(), dtype=np.int64) @ _LEVELS)
    return grey * 255 / max(int(layer[..., 3].sum(dtype=np.int64)), 1)


def layer_colour(layer: np.ndarray) -> Image.Image:
    """A premultiplied RGBa layer's colour as a PIL RGB image, unpacked by PIL straight from the layer's bytes (9x
    faster than copying the three channels out first)."""
    layer = np.ascontiguousarray(layer)
    return Image.frombytes("RGB", (layer.shape[1], layer.shape[0]), layer, "raw", "RGBX")


def hue_matrix(hue: float) -> np.ndarray:
    """Rotation by `hue` turns about the grey axis (the usual ITU-R 601 hue-rotation matrix; rows sum to 1)."""
    c, s = np.cos(2 * np.pi * hue), np.sin(2 * np.pi * hue)
    return np.array([[0.299 + 0.701 * c + 0.168 * s, 0.587 - 0.587 * c + 0.330 * s, 0.114 - 0.114 * c - 0.497 * s],
                     [0.299 - 0.299 * c - 0.328 * s, 0.587 + 0.413 * c + 0.035 * s, 0.114 - 0.114 * c + 0.292 * s],
                     [0.299 - 0.300 * c + 1.250 * s, 0.587 - 0.588 * c - 1.050 * s, 0.114 + 0.886 * c - 0.203 * s]])


def jitter_matrix(brightness: float, contrast: float, saturation: float, hue: float) -> np.ndarray:
    """Brightness (scale), contrast (about the mean luma: its offset is added separately), saturation (about each
    pixel's luma), then a hue rotation in turns, as one 3 x 3 matrix: all four are linear in the colour."""
    saturate = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), np.array(LUMA))
    return contrast * brightness * hue_matrix(hue) @ saturate


def jitter_image(image: Image.Image, brightness: float, contrast: float, saturation: float,
                 hue: float) -> Image.Image:
    """`jitter_matrix` with the contrast's offset (grey stays grey), identity at (1, 1, 1, 0); applied by PIL in a
    single pass, rounded and clipped to 0..255."""
    offset = (1 - contrast) * brightness * mean_luma(image)
    coefficients = np.hstack([jitter_matrix(brightness, contrast, saturation, hue), np.full((3, 1), offset)])
    return image.convert("RGB", tuple(float(v) for v in coefficients.ravel()))


def color_jitter(rgb: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float) -> np.ndarray:
    """`jitter_image` on an RGB array."""
    return np.asarray(jitter_image(Image.fromarray(rgb, "RGB"), brightness, contrast, saturation, hue))


def shift_reflect(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by dx and down by dy; the uncovered border mirrored from the image (no new colours):
    np.pad's `reflect` of each axis, written into one array (for 2 |dx| < W and 2 |dy| < H: --bg-shift <= R / 4)."""
    h, w = image.shape[:2]
    out = np.empty_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                      max(-dx, 0):w - max(dx, 0)]
    columns = slice(max(dx, 0), w + min(dx, 0))
    if dy > 0:  # row y < dy mirrors row 2 dy - y
        out[:dy, columns] = out[2 * dy:dy:-1, columns]
    elif dy < 0:  # row y >= h + dy mirrors row 2 (h - 1 + dy) - y
        out[h + dy:, columns] = out[h - 2 + dy:h - 2 + 2 * dy if h - 2 + 2 * dy >= 0 else None:-1, columns]
    if dx > 0:
        out[:, :dx] = out[:, 2 * dx:dx:-1]
    elif dx < 0:
        out[:, w + dx:] = out[:, w - 2 + dx:w - 2 + 2 * dx if w - 2 + 2 * dx >= 0 else None:-1]
    return out


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


def box_blur(image: Image.Image, radius: float) -> Image.Image:
    """PIL's box blur of `radius` px (a light blur at a third of a gaussian's cost); identity at 0."""
    return image.filter(ImageFilter.BoxBlur(float(radius))) if radius > 0 else image


@functools.cache
def noise_table() -> np.ndarray:
    """A fixed field of standard normal noise in 1/32 steps (int8, clipped at 3.97): every row's noise is a
    window of it at offsets drawn from its own seed (reading is 10x cheaper than drawing a new field)."""
    normal = np.random.default_rng(0).standard_normal((NOISE_SIDE, NOISE_SIDE, 3), dtype=np.float32)
    return np.clip(np.rint(normal * 32), -127, 127).astype(np.int8)


@functools.cache
def _wrapped_noise_table(height: int, width: int) -> np.ndarray:
    """`noise_table` extended by its own first rows and columns, so a window that wraps around is a plain slice."""
    return np.pad(noise_table(), ((0, height), (0, width), (0, 0)), mode="wrap")


def add_noise(rgb: np.ndarray, sigma: float, noise_seed: int) -> np.ndarray:
    """Gaussian noise of `sigma` levels (in 1/8 steps): the window of `noise_table` at offsets drawn from
    `default_rng(noise_seed)`, wrapping around."""
    steps = int(round(sigma * 8))
    if steps <= 0:
        return rgb.copy()
    h, w = rgb.shape[:2]
    oy, ox = (int(v) for v in np.random.default_rng(noise_seed).integers(0, NOISE_SIDE, size=2))
    if oy + h <= NOISE_SIDE and ox + w <= NOISE_SIDE:
        field = noise_table()[oy:oy + h, ox:ox + w]
    else:
        field = _wrapped_noise_table(h, w)[oy:oy + h, ox:ox + w]
    noisy = field.astype(np.int16)  # levels added: (value * steps + 128) >> 8 (32 per sigma x 8 per level = 256)
    noisy *= steps  # int16: |field| <= 127 and steps <= 128 (sigma <= 16) cannot overflow
    noisy += 128
    noisy >>= 8  # arithmetic (floor) shift; 3x faster than a 256-entry table's take
    noisy += rgb
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


# --------------------------------------------------------------------------------------------- layers

def layer_window(placement: Placement, resolution: int, margin: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the square about the placed box's centre that holds the cut-out at any rotation, plus
    `margin` px (a motion blur's reach), clipped to the frame. The cut-out's layer is worked on this window
    only: outside it its alpha is 0 anyway."""
    half = math.ceil(math.hypot(placement.width, placement.height) / 2) + margin + 1
    cx, cy = placement.x + placement.width / 2, placement.y + placement.height / 2
    return (max(0, math.floor(cx - half)), max(0, math.floor(cy - half)),
            min(resolution, math.ceil(cx + half)), min(resolution, math.ceil(cy + half)))


def windowed_layer(placed: np.ndarray, placement: Placement, window: tuple[int, int, int, int]) -> np.ndarray:
    """The placed premultiplied cut-out (or its alpha alone) on a transparent layer covering `window`."""
    x0, y0, x1, y1 = window
    layer = np.zeros((y1 - y0, x1 - x0, *placed.shape[2:]), dtype=np.uint8)
    layer[placement.y - y0:placement.y - y0 + placement.height, placement.x - x0:placement.x - x0 + placement.width] \
        = placed
    return layer


def rotate_layer(layer: np.ndarray, angle: float, center: tuple[float, float]) -> np.ndarray:
    """Rotated counter-clockwise by `angle` degrees about `center` (x, y), bilinear in premultiplied alpha
    (no dark fringes); whatever leaves the frame is cut off. An alpha alone (H x W) rotates to exactly the alpha
    channel of its layer rotated (PIL's bilinear filter weighs each band alike)."""
    if angle == 0:
        return layer.copy()
    image = Image.fromarray(layer, "RGBa" if layer.ndim == 3 else "L")
    return np.asarray(image.rotate(float(angle), Image.Resampling.BILINEAR, center=center))


def with_alpha(layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The layer's straight colour under a new alpha (which must be 0 wherever the old one is)."""
    straight = np.array(Image.fromarray(layer, "RGBa").convert("RGBA"))
    straight[..., 3] = alpha
    return np.asarray(Image.fromarray(straight, "RGBA").convert("RGBa"))


def hard_alpha(alpha: np.ndarray, threshold: int) -> np.ndarray:
    """Alpha thresholded to 0/255 at `threshold`: a cut with scissors, no soft edge."""
    return (alpha >= threshold).view(np.uint8) * np.uint8(255)  # 3x np.where's speed


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Alpha blurred by `sigma` px, kept inside the cut-out (min with the own alpha, so colour stays defined)."""
    return np.minimum(alpha, gaussian_blur(alpha, sigma))


def motion_blur(layer: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Mean of `length` copies along direction `angle` (degrees, counter-clockwise from +x), centred: a short
    linear motion of the cut-out, colour and alpha together, each channel alone (integer arithmetic, rounded)."""
    if length <= 1:
        return layer.copy()
    theta = np.deg2rad(angle)
    total = np.zeros(layer.shape, dtype=np.uint32)
    for step in range(length):
        d = step - (length - 1) / 2
        total += shift_zero(layer, int(round(d * np.cos(theta))), int(round(-d * np.sin(theta))))
    return ((total + length // 2) // length).astype(np.uint8)


def jitter_layer(layer: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float,
                 gain: float = 1.0, luma: float | None = None, colour: Image.Image | None = None) -> np.ndarray:
    """Colour jitter of the cut-out (contrast about its alpha-weighted mean luma, `layer_luma`, given or computed),
    times `gain`; alpha unchanged (`colour`: the layer's `layer_colour`, if at hand). The matrix acts on
    premultiplied colour directly (a linear map commutes with the alpha scale); the contrast offset is added in
    proportion to alpha, and colour is kept within [0, alpha]."""
    brightness = brightness * gain
    matrix = tuple(float(v) for v in np.hstack([jitter_matrix(brightness, contrast, saturation, hue),
                                                np.zeros((3, 1))]).ravel())
    colour = layer_colour(layer) if colour is None else colour
    offset = (1 - contrast) * brightness * (layer_luma(layer, colour) if luma is None else luma)
    by_alpha = np.rint(np.arange(256) * (offset / 255)).astype(np.int16)  # the offset at each alpha, premultiplied
    jittered = np.frombuffer(colour.convert("RGB", matrix).tobytes("raw", "RGBX"), np.uint8).reshape(layer.shape)
    alpha = layer[..., 3]
    shift = by_alpha[alpha]
    out = np.empty_like(layer)
    for c in range(3):  # a channel plane at a time: 2x faster than broadcasting the offset over the channels
        plane = jittered[..., c] + shift
        out[..., c] = np.minimum(np.maximum(plane, 0, out=plane), alpha, out=plane)
    out[..., 3] = alpha
    return out


def harmonize_gain(layer: np.ndarray, background: np.ndarray, strength: float, luma: float | None = None) -> float:
    """Brightness gain moving the cut-out's mean luma (`layer_luma`, given or computed) `strength` of the way toward
    the mean luma of the background under its box (`background` covers the same pixels as `layer`); within
    [0.5, 2]."""
    alpha = layer[..., 3]
    if strength <= 0 or not alpha.any():
        return 1.0
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    local = mean_luma(Image.fromarray(np.ascontiguousarray(background[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])))
    own = layer_luma(layer) if luma is None else luma
    return float(np.clip(1 + strength * (local / max(own, 1.0) - 1), 0.5, 2.0))


def cast_shadow(background: np.ndarray, alpha: np.ndarray, dx: int, dy: int, sigma: float,
                opacity: float, spared: np.ndarray | None = None) -> np.ndarray:
    """The background darkened by the alpha moved by (dx, dy) and blurred: at most `opacity` of its light, on no
    `spared` pixel. Worked on the alpha's box grown by the shift and the blur's reach (zero beyond, as on the
    full frame): nothing outside it changes, so `spared` is read there only."""
    if opacity <= 0 or not alpha.any():
        return background.copy()
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    pad = max(abs(dx), abs(dy)) + math.ceil(3 * sigma) + 2
    h, w = alpha.shape
    y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    shade = gaussian_blur(shift_zero(alpha[y0:y1, x0:x1], dx, dy), sigma).astype(np.int32)
    light = 255 * 255 - shade * int(round(opacity * 255))  # in 1/65025: what the shadow lets through
    if spared is not None:
        light[spared[y0:y1, x0:x1]] = 255 * 255
    out = background.copy()
    region = out[y0:y1, x0:x1]
    for c in range(3):  # a colour plane at a time: 1.8x faster than broadcasting `light` over the channels
        plane = region[..., c] * light
        plane += 32512
        plane //= 65025
        region[..., c] = plane
    return out


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
    bg_blur_radius: float
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
        """Field name -> value (plain floats, ints and a string: no deep copy needed, unlike dataclasses.asdict)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def object_columns(self) -> dict:
        """The cut-out's part: what an entry of `objects` holds."""
        return {name: getattr(self, name) for name, _ in OBJECT_AUGMENT_FIELDS}


def _f32(value: float) -> float:
    """Exactly representable in float32, the columns' type, so a stored row re-derives the same pixels."""
    return float(np.float32(value))


def draw_augmentation(s: ContentSettings, index: int, placement: Placement) -> Augmentation:
    """Sample `index`'s parameters from its own stream `default_rng([seed, index, 1])`, so placements stay those
    of `--augment none`."""
    return draw_parameters(s, np.random.default_rng([s.seed, index, 1]), placement)


def draw_parameters(s: ContentSettings, rng: np.random.Generator, placement: Placement) -> Augmentation:
    """One set of parameters from `rng` (a scene's further objects draw theirs from the scene's stream and use
    the cut-out's part only). Every part is drawn even when off (its range is then the identity): turning one
    part off leaves the others' draws unchanged."""
    def jitter(strength: float) -> list[float]:
        return [_f32(rng.uniform(1 - strength, 1 + strength)) for _ in range(3)] + \
            [_f32(rng.uniform(-strength / 10, strength / 10))]

    bg, fg = jitter(s.bg_jitter), jitter(s.fg_jitter)
    bg_dx, bg_dy = (int(v) for v in rng.integers(-s.bg_shift, s.bg_shift + 1, size=2))
    bg_blur, bg_noise = _f32(rng.uniform(0, s.bg_blur)), _f32(rng.uniform(0, s.bg_noise))
    noise_seed = int(rng.integers(0, 2 ** 63 - 1))
    angle, harmonize = _f32(rng.uniform(-s.fg_rotation, s.fg_rotation)), _f32(rng.uniform(0, s.harmonize))
    modes = s.blend_mode_list
    blend = modes[int(rng.integers(0, len(modes)))]  # what rng.choice(modes) draws, without its array conversion
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
    image = Image.fromarray(shift_reflect(background, p.bg_dx, p.bg_dy), "RGB")
    image = jitter_image(image, p.bg_brightness, p.bg_contrast, p.bg_saturation, p.bg_hue)
    return add_noise(np.asarray(box_blur(image, p.bg_blur_radius)), p.bg_noise_sigma, p.noise_seed)


def blend_edge(layer: np.ndarray, p: Augmentation, threshold: int) -> np.ndarray:
    """The layer's edge blended: motion blurs colour and alpha together; hard and feather change the alpha only
    (`edge_alpha`, the one definition of each blend's alpha)."""
    if p.blend == "motion":
        return motion_blur(layer, p.motion_length, p.motion_angle)
    if p.blend in ("hard", "feather"):
        return with_alpha(layer, edge_alpha(layer[..., 3], p, threshold))
    return layer


def edge_alpha(alpha: np.ndarray, p: Augmentation, threshold: int) -> np.ndarray:
    """The alpha `blend_edge` gives a layer of this alpha: no edge blend reads colour (motion blurs each channel
    alone, so its alpha is the alpha's blur)."""
    if p.blend == "hard":
        return hard_alpha(alpha, threshold)
    if p.blend == "feather":
        return feather_alpha(alpha, p.feather_sigma)
    if p.blend == "motion":
        return motion_blur(alpha, p.motion_length, p.motion_angle)
    return alpha


def ground_shadow(alpha: np.ndarray, foot_y: int) -> np.ndarray:
    """The alpha laid down on the ground behind its foot: squashed to a quarter of its height toward the foot's
    row (which stays where it is), nothing below the foot."""
    rows = np.arange(alpha.shape[0])
    source = foot_y - (foot_y - rows) * 4
    laid = alpha[np.clip(source, 0, alpha.shape[0] - 1)]
    laid[(source < 0) | (rows > foot_y)] = 0
    return laid


@dataclasses.dataclass(frozen=True)
class ObjectLayer:
    """A cut-out as the composite shows it: its premultiplied layer on `window` (x0, y0, x1, y1), rotated, colour
    jittered and edge blended. Its alpha depends on the cut-out and the parameters only."""

    layer: np.ndarray
    window: tuple[int, int, int, int]

    def alpha(self, resolution: int) -> np.ndarray:
        """The final alpha on the full R x R frame (whole: what scenery hides included)."""
        return on_frame(self.layer[..., 3], self.window, resolution)

    def paste(self, image: np.ndarray, hidden: np.ndarray | None) -> None:
        """Alpha-over into `image` in place, less the `hidden` pixels (nearer scenery shows the background)."""
        x0, y0, x1, y1 = self.window
        window = Placement(x0, y0, 1.0, x1 - x0, y1 - y0)
        paste_over(image, hide(self.layer, window, hidden) if hidden is not None else self.layer, window)


def on_frame(alpha: np.ndarray, window: tuple[int, int, int, int], resolution: int) -> np.ndarray:
    """A window's alpha on the full R x R frame (0 outside the window)."""
    x0, y0, x1, y1 = window
    out = np.zeros((resolution, resolution), dtype=np.uint8)
    out[y0:y1, x0:x1] = alpha
    return out


def blend_reach(p: Augmentation) -> int:
    """How far (px) the edge blend carries a pixel: a motion blur half its length; a feather's gaussian, which
    PIL runs as three box blurs of radius at most sigma + 1 each, less than 3 (sigma + 1) + 1."""
    if p.blend == "feather":
        return 3 * math.ceil(p.feather_sigma) + 4
    return p.motion_length if p.blend == "motion" else 0


def content_window(layer: np.ndarray, window: tuple[int, int, int, int],
                   reach: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The layer (or alpha) cut to the box of its non-zero alpha grown by `reach` px, within its window, and that
    box on the frame. What is cut off is transparent and stays so (nothing reaches it), and an edge blend sees the
    same zeros (or the same window edge) around the content, so every later step gives the same pixels, on less."""
    alpha = layer[..., 3] if layer.ndim == 3 else layer
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return layer, window
    top, bottom = max(0, int(rows[0]) - reach), min(alpha.shape[0], int(rows[-1]) + 1 + reach)
    left, right = max(0, int(cols[0]) - reach), min(alpha.shape[1], int(cols[-1]) + 1 + reach)
    x0, y0 = window[:2]
    return np.ascontiguousarray(layer[top:bottom, left:right]), (x0 + left, y0 + top, x0 + right, y0 + bottom)


def rotated_window(placed: np.ndarray, placement: Placement, p: Augmentation,
                   resolution: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(the placed cut-out, or its alpha alone, rotated, on the box of its content and the edge blend's reach;
    that box on the frame)."""
    window = x0, y0, x1, y1 = layer_window(placement, resolution, p.motion_length)
    centre = (placement.x + placement.width / 2 - x0, placement.y + placement.height / 2 - y0)
    return content_window(rotate_layer(windowed_layer(placed, placement, window), p.fg_angle, centre), window,
                          blend_reach(p))


def object_layer(placed: np.ndarray, placement: Placement, p: Augmentation, scene: np.ndarray,
                 threshold: int) -> ObjectLayer:
    """The cut-out's layer, harmonised toward the perturbed background `scene` under its window. Colour is
    jittered before the edge blend (a motion blur smears the jittered colour)."""
    layer, window = rotated_window(placed, placement, p, scene.shape[0])
    x0, y0, x1, y1 = window
    colour = layer_colour(layer)
    luma = layer_luma(layer, colour)  # the harmonisation's and the jitter's: one pass over the layer, not two
    gain = harmonize_gain(layer, scene[y0:y1, x0:x1], p.harmonize_strength, luma)
    layer = blend_edge(jitter_layer(layer, p.fg_brightness, p.fg_contrast, p.fg_saturation, p.fg_hue, gain, luma,
                                    colour), p, threshold)
    return ObjectLayer(layer, window)


def object_alpha(placed_alpha: np.ndarray, placement: Placement, p: Augmentation, resolution: int,
                 threshold: int) -> np.ndarray:
    """`object_layer(...).alpha(resolution)` from the cut-out's alpha alone: one channel rotated instead of four,
    no colour work (what a scene needs to decide whether it keeps a drawn object)."""
    alpha, window = rotated_window(placed_alpha, placement, p, resolution)
    return on_frame(edge_alpha(alpha, p, threshold), window, resolution)


def shade(scene: np.ndarray, alpha: np.ndarray, p: Augmentation, hidden: np.ndarray | None = None,
          foot: tuple[int, int] | None = None) -> np.ndarray:
    """The cut-out's soft shadow on the ground: cast by its whole `alpha`; in ground mode laid down behind its
    `foot` and falling on no `hidden` pixel (nearer scenery)."""
    if foot is None:
        return cast_shadow(scene, alpha, p.shadow_dx, p.shadow_dy, p.shadow_sigma, p.shadow_opacity)
    return cast_shadow(scene, ground_shadow(alpha, foot[1]), p.shadow_dx, 0, p.shadow_sigma, p.shadow_opacity,
                       hidden)


def augmented_composite(background: np.ndarray, placed: np.ndarray, placement: Placement, p: Augmentation,
                        threshold: int, hidden: np.ndarray | None = None,
                        foot: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(composite, final alpha) of one sample: the background perturbed, the cut-out's shadow, then the cut-out.
    Ground mode: `hidden` pixels (nearer scenery) show the background and take no shadow, and the shadow is laid
    down from the `foot` (x, y); the alpha returned is still the whole (amodal) one."""
    scene = perturb_background(background, p)
    cutout = object_layer(placed, placement, p, scene, threshold)
    alpha = cutout.alpha(background.shape[0])
    scene = shade(scene, alpha, p, hidden, foot)
    cutout.paste(scene, hidden)
    return scene, alpha
