"""The benchmark's inputs: procedural demo backgrounds and cut-outs as encoded files, composited test images for
the depth sections, and photographs (--photos, else the ones scikit-image ships) cropped into backgrounds and
soft-edged cut-outs."""

from __future__ import annotations

from pathlib import Path

from builder.bench.common import RESOLUTION


def make_inputs(folder: Path, n_bg: int, n_fg: int) -> tuple[Path, Path]:
    """Classic-style inputs with real encoded files: pre-resized R x R JPEG backgrounds, RGBA PNG cut-outs."""
    from PIL import Image

    from builder.rows.demo import demo_background, demo_foreground

    bg_dir, fg_dir = folder / "bg", folder / "fg"
    bg_dir.mkdir(parents=True, exist_ok=True)
    fg_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        image = demo_background(100 + i).resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS)
        image.save(bg_dir / f"bg_{i:03d}.jpg", quality=95)
    for i in range(n_fg):
        image = demo_foreground(100 + i, size=160 + 8 * (i % 5))
        image.save(fg_dir / f"fg_{i:03d}.png")
    return bg_dir, fg_dir


def depth_images(count: int):
    import numpy as np

    from builder.rows.demo import demo_background, demo_foreground

    images = []
    for i in range(count):
        bg = demo_background(200 + i).resize((RESOLUTION, RESOLUTION))
        fg = demo_foreground(200 + i, 120)
        bg.paste(fg, (50 + 7 * i % 60, 60), fg)
        images.append(np.asarray(bg))
    return np.stack(images)


PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg",
          "hubble_deep_field.jpg", "grass.png", "gravel.png", "brick.png")  # scikit-image's bundled photographs


def photo_dir(given: Path | None) -> Path | None:
    """--photos, else the photographs scikit-image ships in its package (found without importing it)."""
    if given is not None:
        if not given.is_dir():
            raise SystemExit(f"--photos {given}: no such folder; give a folder of photographs (JPEG or PNG)")
        return given
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    return folder if folder and (folder / PHOTOS[0]).exists() else None


def photo_inputs(folder: Path, photos: Path, n_bg: int, n_fg: int) -> tuple[Path, Path]:
    """Backgrounds: R x R crops of the photographs; cut-outs: elliptical soft-edged crops of them (RGBA)."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in photos.iterdir() if p.name in PHOTOS) or sorted(
        p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [Image.open(p).convert("RGB") for p in files]
    bg_dir, fg_dir = folder / "bg", folder / "fg"
    bg_dir.mkdir(parents=True, exist_ok=True)
    fg_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        image = images[i % len(images)]
        side = min(image.size) * (1 - 0.1 * (i // len(images) % 4))
        left, top = (image.width - side) * 0.5, (image.height - side) * (0.2 * (i // len(images) % 5))
        crop = image.crop((round(left), round(top), round(left + side), round(top + side)))
        crop.resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS).save(bg_dir / f"bg_{i:03d}.jpg", quality=95)
    for i in range(n_fg):
        image = images[(i * 3 + 1) % len(images)]
        width, height = 150 + 10 * (i % 5), 170 - 10 * (i % 4)
        x0, y0 = (image.width - width) // 2, (image.height - height) // 3
        rgb = np.asarray(image.crop((x0, y0, x0 + width, y0 + height)))
        yy, xx = np.mgrid[:height, :width]
        inside = ((xx - width / 2) / (width * 0.45)) ** 2 + ((yy - height / 2) / (height * 0.45)) ** 2
        alpha = np.clip((1 - inside) * 600, 0, 255).astype(np.uint8)
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(fg_dir / f"fg_{i:03d}.png")
    return bg_dir, fg_dir


def photo_section_inputs(work: Path, given: Path | None, report: dict) -> tuple[Path, Path]:
    """10 x 10 inputs from photographs (recorded in the report); the procedural demo inputs if none are found."""
    photos = photo_dir(given)
    if photos is None:
        report["inputs"]["photos"] = "none found (pass --photos or pip install scikit-image): procedural demo inputs"
        return make_inputs(work / "demo10", 10, 10)
    report["inputs"]["photos"] = f"{photos}: 10 backgrounds and 10 cut-outs cropped from {', '.join(PHOTOS)}"
    return photo_inputs(work / "photos10", photos, 10, 10)


def coco_inputs(folder: Path, images: int, per_image: int) -> tuple[Path, Path]:
    """A COCO instances file over procedural 640 x 480 JPEG images: `per_image` elliptical polygon instances of
    100-140 px each, away from the border, in two categories. Returns (the JSON, the image folder)."""
    import json

    import numpy as np
    from PIL import Image

    from builder.rows.demo import demo_background

    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    for i in range(images):
        demo_background(300 + i).resize((640, 480), Image.Resampling.LANCZOS).save(image_dir / f"{i:05d}.jpg",
                                                                                    quality=95)
        entries.append({"id": i + 1, "file_name": f"{i:05d}.jpg", "width": 640, "height": 480})
        for k in range(per_image):
            n = len(annotations)
            cx, cy = 80 + (k * 150) % 480, 100 + (k * 150) // 480 * 160 + 40 * (i % 3)
            rx, ry = 50 + 4 * (n % 6), 70 - 4 * (n % 5)
            polygon = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).round(1).ravel()
            annotations.append({"id": n + 1, "image_id": i + 1, "category_id": 1 + n % 2, "iscrowd": 0,
                                "segmentation": [polygon.tolist()]})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    return path, image_dir
