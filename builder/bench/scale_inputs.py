"""Many inputs for the scale section: natural-looking 640 x 480 JPEGs (a colour gradient, soft low-frequency
texture, shapes, sensor-like noise) as backgrounds, and a COCO instances file over images of the same kind, each
holding objects of 100-140 px with their polygons. Written by a pool of processes; deterministic by index."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, CELL = 640, 480, 160  # objects sit one per 160 px cell, away from the image border
JPEG_QUALITY = 90


def natural_image(rng: np.random.Generator):
    """A PIL RGB image: gradient between two colours, a blurred random texture, a few shapes, then noise."""
    from PIL import Image, ImageDraw

    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH] / max(WIDTH, HEIGHT)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    near, far = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
    texture = Image.fromarray(rng.normal(0, 1, (6, 8)).astype(np.float32), "F").resize((WIDTH, HEIGHT),
                                                                                         Image.Resampling.BICUBIC)
    pixels = far + (near - far) * ramp[..., None] + 25 * np.asarray(texture)[..., None]
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):
        x, y = rng.integers(0, WIDTH), rng.integers(0, HEIGHT)
        w, h = rng.integers(20, 160, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=colour)
    return image


def with_noise(image, rng: np.random.Generator):
    from PIL import Image

    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (HEIGHT, WIDTH, 3)).astype(np.float32)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def object_polygon(rng: np.random.Generator, cx: float, cy: float) -> list[float]:
    """A blob's outline: 16-24 points at radii that vary around the centre, 100-140 px across."""
    points = int(rng.integers(16, 25))
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    half = rng.uniform(50, 70, 2)  # half width, half height
    radii = rng.uniform(0.8, 1.0, points)
    xs, ys = cx + half[0] * radii * np.cos(angles), cy + half[1] * radii * np.sin(angles)
    return np.stack([xs, ys], axis=1).round(1).ravel().tolist()


def write_background(folder: Path, index: int) -> None:
    rng = np.random.default_rng([17, index])
    with_noise(natural_image(rng), rng).save(folder / f"bg_{index:05d}.jpg", quality=JPEG_QUALITY)


def write_coco_image(folder: Path, index: int, per_image: int) -> list[list[float]]:
    """One image with `per_image` objects drawn in; their polygons, in cell order."""
    from PIL import ImageDraw

    rng = np.random.default_rng([19, index])
    image = natural_image(rng)
    draw, polygons = ImageDraw.Draw(image), []
    cells = rng.permutation((WIDTH // CELL) * (HEIGHT // CELL))[:per_image]
    for cell in sorted(cells):
        row, col = divmod(int(cell), WIDTH // CELL)
        polygon = object_polygon(rng, col * CELL + CELL / 2 + rng.uniform(-5, 5), row * CELL + CELL / 2
                                 + rng.uniform(-5, 5))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.polygon(list(zip(polygon[::2], polygon[1::2])), fill=colour, outline=tuple(c // 2 for c in colour))
        polygons.append(polygon)
    with_noise(image, rng).save(folder / f"{index:05d}.jpg", quality=JPEG_QUALITY)
    return polygons


def scale_inputs(folder: Path, backgrounds: int, cutouts: int, per_image: int = 10) -> tuple[Path, Path, Path]:
    """`backgrounds` JPEGs in folder/bg, and a COCO file folder/instances.json with `cutouts` instances over
    ceil(cutouts / per_image) JPEGs in folder/images (one category per object shape parity). Reused when there."""
    bg_dir, image_dir, coco = folder / "bg", folder / "images", folder / "instances.json"
    if coco.is_file():
        return bg_dir, coco, image_dir
    bg_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    n_images = -(-cutouts // per_image)
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write_background, [bg_dir] * backgrounds, range(backgrounds), chunksize=16))
        counts = [min(per_image, cutouts - i * per_image) for i in range(n_images)]
        polygons = list(pool.map(write_coco_image, [image_dir] * n_images, range(n_images), counts, chunksize=16))
    images, annotations = [], []
    for i, image_polygons in enumerate(polygons):
        images.append({"id": i + 1, "file_name": f"{i:05d}.jpg", "width": WIDTH, "height": HEIGHT})
        for polygon in image_polygons:
            n = len(annotations) + 1
            annotations.append({"id": n, "image_id": i + 1, "category_id": 1 + n % 2, "iscrowd": 0,
                                "segmentation": [polygon]})
    coco.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "odd"}, {"id": 2, "name": "even"}]}))
    return bg_dir, coco, image_dir
