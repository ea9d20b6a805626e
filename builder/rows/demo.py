"""Procedural demo inputs, made in code so that no binary assets live in git."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEMO_BACKGROUNDS = 4
DEMO_FOREGROUNDS = 3


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def demo_background(index: int, size: int = 320) -> Image.Image:
    """A horizon scene: sky gradient, ground plane, a few boxes; gives the depth model some structure."""
    rng = np.random.default_rng([7, index])
    horizon = int(size * rng.uniform(0.35, 0.6))
    rows = np.linspace(0, 1, size)[:, None, None]
    sky_top, sky_low = rng.uniform(60, 255, 3), rng.uniform(120, 255, 3)
    ground_near, ground_far = rng.uniform(20, 140, 3), rng.uniform(60, 200, 3)
    sky = sky_top + (sky_low - sky_top) * rows
    ground = ground_far + (ground_near - ground_far) * rows
    array = np.where(np.arange(size)[:, None, None] < horizon, sky, ground) * np.ones((1, size, 1))
    image = Image.fromarray(array.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, w = rng.integers(0, size - 40), rng.integers(20, 90)
        h = rng.integers(20, 120)
        draw.rectangle([x, horizon - h, x + w, horizon + 5], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def demo_foreground(index: int, size: int = 200) -> Image.Image:
    """An RGBA cut-out on a transparent canvas, with soft (anti-aliased) edges."""
    rng = np.random.default_rng([11, index])
    alpha = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(alpha)
    shape = index % 3
    if shape == 0:
        draw.ellipse([30, 20, 170, 190], fill=255)
    elif shape == 1:
        angles = np.linspace(0, 2 * np.pi, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, 90, 38)
        draw.polygon([(100 + r * np.sin(a), 100 - r * np.cos(a)) for a, r in zip(angles, radii)], fill=255)
    else:
        draw.rounded_rectangle([50, 10, 150, 190], radius=30, fill=255)
        draw.ellipse([20, 60, 80, 120], fill=255)
    alpha = alpha.filter(ImageFilter.GaussianBlur(1.5))
    base, accent = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    ramp = np.linspace(0, 1, size)[None, :, None]
    colour = (base + (accent - base) * ramp) * np.ones((size, 1, 1))
    rgba = np.dstack([colour.clip(0, 255).astype(np.uint8), np.asarray(alpha)])
    return Image.fromarray(rgba, "RGBA")


def ground_scene(index: int, size: int = 320) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A scene with exact geometry, for `--placement-mode ground`: sky (disparity 0), a floor plane whose
    disparity grows linearly from the horizon to the bottom row (0..1, as a pinhole camera sees a plane), and
    blocks standing on it, each a front face at its base row's disparity with a size that grows with it, drawn
    far to near. Returns the image, its disparity map (float32, size x size) and where the open floor is (bool:
    the true ground, for measuring placements)."""
    rng = np.random.default_rng([13, index])
    horizon = int(size * rng.uniform(0.3, 0.45))
    rows = np.arange(size, dtype=np.float64)
    floor = np.clip((rows - horizon + 1) / (size - horizon), 0, None)
    disparity = np.repeat(floor[:, None], size, axis=1)
    open_floor = np.repeat((rows >= horizon)[:, None], size, axis=1)
    sky_top, sky_low = rng.uniform(80, 255, 3), rng.uniform(150, 255, 3)
    near, far = rng.uniform(20, 120, 3), rng.uniform(90, 200, 3)
    colour = np.where((rows < horizon)[:, None], sky_top + (sky_low - sky_top) * (rows / horizon)[:, None],
                      far + (near - far) * floor[:, None])
    array = colour[:, None, :] * np.ones((1, size, 1))
    array[horizon::12] *= 0.85  # floor lines: texture for a depth model
    image = Image.fromarray(array.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    bases = np.sort(rng.integers(horizon + (size - horizon) // 5, size, 4))
    for base in bases:
        near_share = floor[base]
        height, width = int(40 + 120 * near_share), int(30 + 90 * near_share)
        x = int(rng.integers(0, size - width))
        draw.rectangle([x, base - height + 1, x + width - 1, base], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        disparity[base - height + 1:base + 1, x:x + width] = near_share
        open_floor[base - height + 1:base + 1, x:x + width] = False
    return image, disparity.astype(np.float32), open_floor


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def demo_ground_files() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """The ground scenes as (name, PNG bytes) and their disparity maps as (name, .npy bytes): the demo is its
    own --bg-depth-dir."""
    scenes = [ground_scene(i) for i in range(DEMO_BACKGROUNDS)]
    return ([(f"demo_ground_{i:02d}.png", _png(image)) for i, (image, _, _) in enumerate(scenes)],
            [(f"demo_ground_{i:02d}.npy", _npy(depth)) for i, (_, depth, _) in enumerate(scenes)])


def demo_files() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """Deterministic demo inputs as (file name, PNG bytes) (same bytes every run, so a demo run can resume)."""
    backgrounds = [(f"demo_bg_{i:02d}.png", _png(demo_background(i))) for i in range(DEMO_BACKGROUNDS)]
    foregrounds = [(f"demo_fg_{i:02d}.png", _png(demo_foreground(i))) for i in range(DEMO_FOREGROUNDS)]
    return backgrounds, foregrounds
