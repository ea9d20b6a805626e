#!/usr/bin/env python
"""CPU time per `default` row of `--augment none` and `realistic` (no depth: rendering, encoding, statistics),
and of each augmentation part alone, on the given inputs.

    python scripts/augment_cost.py --bg-dir BG --fg-dir FG [--resolution 224] [--rows 400]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from builder.contract.cli import StrictParser
from builder.contract.plan import draw_placement
from builder.contract.schema import DEFAULT
from builder.contract.settings import ContentSettings, RunOptions
from builder.rows import augment
from builder.rows.assets import load_inputs
from builder.rows.render import RenderContext, render_sample
from builder.rows.stats import StatsBook


def cpu_ms_per_row(function, rows: int) -> float:
    start = time.process_time()
    for index in range(rows):
        function(index)
    return (time.process_time() - start) * 1000 / rows


def part_costs(ctx: RenderContext, rows: int) -> dict[str, float]:
    """Each part's pure function on the rows' own drawn parameters (the blend modes on rows drawing them)."""
    s, r = ctx.settings, ctx.settings.resolution
    cases = []
    for index in range(rows):
        bg_id, fg_id, flip = ctx.plan.inputs_of(index)
        fg = ctx.inputs.foregrounds[fg_id]
        placement = draw_placement(s.seed, index, *fg.shape[:2], r, s.scale_min, s.scale_max)
        params = augment.draw_augmentation(s, index, placement)
        window = augment.layer_window(placement, r, params.motion_length)
        layer = augment.windowed_layer(ctx.foreground_cache.placed(fg_id, flip, placement), placement, window)
        alpha = np.zeros((r, r), dtype=np.uint8)
        alpha[window[1]:window[3], window[0]:window[2]] = layer[..., 3]
        cases.append((ctx.inputs.backgrounds[bg_id], layer, params, alpha))
    centre = lambda lay: (lay.shape[1] / 2, lay.shape[0] / 2)  # noqa: E731 - the window's centre
    parts = {
        "bg colour jitter": lambda bg, lay, p, alpha: augment.color_jitter(bg, p.bg_brightness, p.bg_contrast,
                                                                        p.bg_saturation, p.bg_hue),
        "bg shift": lambda bg, lay, p, alpha: augment.shift_reflect(bg, p.bg_dx, p.bg_dy),
        "bg blur": lambda bg, lay, p, alpha: np.asarray(augment.box_blur(Image.fromarray(bg), p.bg_blur_radius)),
        "bg noise": lambda bg, lay, p, alpha: augment.add_noise(bg, p.bg_noise_sigma, p.noise_seed),
        "fg rotation": lambda bg, lay, p, alpha: augment.rotate_layer(lay, p.fg_angle, centre(lay)),
        "fg colour jitter + harmonise": lambda bg, lay, p, alpha: augment.jitter_layer(
            lay, p.fg_brightness, p.fg_contrast, p.fg_saturation, p.fg_hue,
            augment.harmonize_gain(lay, bg[:lay.shape[0], :lay.shape[1]], p.harmonize_strength)),
        "edge blend (drawn mode)": lambda bg, lay, p, alpha: augment.blend_edge(lay, p, s.mask_threshold),
        "shadow": lambda bg, lay, p, alpha: augment.cast_shadow(bg, alpha, p.shadow_dx,
                                                             p.shadow_dy, p.shadow_sigma, p.shadow_opacity),
    }
    return {name: cpu_ms_per_row(lambda i, f=f: f(*cases[i]), rows) for name, f in parts.items()}


def main() -> None:
    parser = StrictParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bg-dir", type=Path, required=True)
    parser.add_argument("--fg-dir", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--rows", type=int, default=400)
    args = parser.parse_args()
    totals = {}
    for preset in ("none", "realistic"):
        settings = ContentSettings(resolution=args.resolution, no_depth=True, augment=preset)
        ctx = RenderContext(settings, load_inputs(settings, RunOptions(bg_dir=args.bg_dir, fg_dir=args.fg_dir)))
        rows = min(args.rows, ctx.plan.sample_count)
        render_sample(ctx, 0, StatsBook(DEFAULT.peaks))  # warm the foreground cache like a long run
        totals[preset] = min(cpu_ms_per_row(lambda i: render_sample(ctx, i, StatsBook(DEFAULT.peaks)), rows)
                             for _ in range(3))
    print(f"R={args.resolution}, {rows} rows, CPU ms per row (best of 3)")
    print("| part | ms/row |\n| --- | ---: |")
    for name, ms in part_costs(ctx, rows).items():
        print(f"| {name} | {ms:.2f} |")
    print(f"| row, --augment none | {totals['none']:.2f} |\n| row, --augment realistic | {totals['realistic']:.2f} |")
    print(f"ratio realistic / none: {totals['realistic'] / totals['none']:.2f}")


if __name__ == "__main__":
    main()
