"""Stored composites against an alpha-over written here, independently of builder.rows.composite and verify.

Reference, in float64: the stored cut-out (`foregrounds` config), flipped for `flip` rows, premultiplied
(colour * alpha / 255), each premultiplied channel and alpha resized with PIL's bilinear filter in float
mode (no rounding) to the size given by the row's scale, then `fg + bg * (1 - alpha / 255)` over the stored
background (`backgrounds` config) at (x, y). The generator composites over the original background and
JPEG-encodes the result, so stored and reference differ by two JPEG round trips (quality 95) and the
generator's uint8 rounding. Measured on all 48 rows of the small demo run:

* inside the pasted box: mean abs error at most 2.7 per row, worst 8x8 block mean 7.6 (the same rows with
  the flip left out: mean 15 or more, worst block 46 or more);
* outside: identical to the stored background beyond 16 px of the box (JPEG codes 16 px blocks alike when
  their pixels are alike; 24 px below, for chroma upsampling across a block edge), at most 16 levels
  in the ring between.
"""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image

from builder.contract.plan import Placement, placed_size
from builder.rows.composite import placed_foreground
from builder.verify.checks import composite_error

RESOLUTION = 224  # the small settings' (default) resolution
INSIDE_MEAN, INSIDE_BLOCK = 6.0, 20.0  # about 2.5x the worst measured
RING, RING_LIMIT = 24, 32


def reference_composite(row: dict, foreground: np.ndarray, background: np.ndarray
                        ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Float alpha-over of the row's cut-out onto the background; also the pasted box (x0, y0, x1, y1)."""
    fg = foreground.astype(np.float64)[:, ::-1] if row["flip"] else foreground.astype(np.float64)
    height, width = fg.shape[:2]
    longer = max(1, round(row["scale"] * RESOLUTION))
    size = (longer, max(1, round(height * longer / width))) if width >= height else \
        (max(1, round(width * longer / height)), longer)
    alpha = fg[..., 3]
    channels = [fg[..., c] * alpha / 255 for c in range(3)] + [alpha]
    placed = np.dstack([np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), "F")
                                   .resize(size, Image.Resampling.BILINEAR)) for c in channels]).astype(np.float64)
    out = background.astype(np.float64)
    x0, y0, x1, y1 = row["x"], row["y"], row["x"] + size[0], row["y"] + size[1]
    region = out[y0:y1, x0:x1]
    region[:] = placed[..., :3] + region * (1 - placed[..., 3:4] / 255)
    return out, (x0, y0, x1, y1)


def composite_problems(row: dict, foreground: np.ndarray, background: np.ndarray) -> list[str]:
    expected, (x0, y0, x1, y1) = reference_composite(row, foreground, background)
    stored = np.asarray(row["fg_bg"], dtype=np.float64)
    problems = []
    inside = np.abs(stored - expected)[y0:y1, x0:x1]
    h, w = inside.shape[0] // 8 * 8, inside.shape[1] // 8 * 8
    block = inside[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3, 4)).max() if h and w else 0.0
    if inside.mean() > INSIDE_MEAN or block > INSIDE_BLOCK:
        problems.append(f"inside the pasted box: mean abs error {inside.mean():.2f} (limit {INSIDE_MEAN}), "
                        f"worst 8x8 block {block:.2f} (limit {INSIDE_BLOCK})")
    outside = np.abs(stored - background.astype(np.float64)).max(axis=-1)
    near = np.zeros(outside.shape, dtype=bool)
    near[max(0, y0 - RING):y1 + RING, max(0, x0 - RING):x1 + RING] = True
    near[y0:y1, x0:x1] = False
    far = np.ones(outside.shape, dtype=bool)
    far[max(0, y0 - RING):y1 + RING, max(0, x0 - RING):x1 + RING] = False
    if far.any() and outside[far].max() > 0:
        problems.append(f"{int((outside[far] > 0).sum())} pixels more than {RING} px from the box differ from "
                        f"the stored background (max {outside[far].max():.0f})")
    if near.any() and outside[near].max() > RING_LIMIT:
        problems.append(f"within {RING} px of the box: max abs difference to the stored background "
                        f"{outside[near].max():.0f} (limit {RING_LIMIT})")
    return problems


def load(out):
    rows = datasets.load_dataset(str(out), "default", split="train")
    backgrounds = {r["bg_id"]: np.asarray(r["image"]) for r in datasets.load_dataset(str(out), "backgrounds",
                                                                                      split="train")}
    foregrounds = {r["fg_id"]: np.asarray(r["image"]) for r in datasets.load_dataset(str(out), "foregrounds",
                                                                                      split="train")}
    return rows, backgrounds, foregrounds


def test_stored_composites_equal_an_independent_alpha_over(reference_dataset):
    rows, backgrounds, foregrounds = load(reference_dataset)
    assert rows.num_rows == 48 and {r["flip"] for r in rows} == {False, True}
    problems = {row["sample_id"]: composite_problems(row, foregrounds[row["fg_id"]], backgrounds[row["bg_id"]])
                for row in rows}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


def test_verify_flags_changed_colours_inside_the_cut_out(reference_dataset):
    """Only the pasted object's colours change: mask, placement and every pixel outside stay as stored, so
    only the inside-the-paste branch of `composite_error` can notice."""
    rows, backgrounds, foregrounds = load(reference_dataset)
    for row in (rows[5], rows[30]):
        foreground, background = foregrounds[row["fg_id"]], backgrounds[row["bg_id"]]
        height, width = placed_size(row["scale"], *foreground.shape[:2], RESOLUTION)
        placement = Placement(row["x"], row["y"], row["scale"], width, height)
        placed = placed_foreground(foreground, row["flip"], placement)
        stored = np.asarray(row["fg_bg"])
        assert composite_error(stored, background, placed, placement, 95) is None
        recoloured = stored.copy()
        cut_out = np.asarray(row["mask"]) == 255
        recoloured[cut_out] = 255 - recoloured[cut_out]
        message = composite_error(recoloured, background, placed, placement, 95)
        assert message and "differs from the recomposite inside the pasted area" in message, message
