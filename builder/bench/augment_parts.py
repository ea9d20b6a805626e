"""Section augment: the CPU cost of each `--augment realistic` part alone (its pure function on the rows' own
drawn parameters; the edge blend in each row's drawn mode), in this process. The whole row's cost, against
`--augment none`, is in the rows section."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _cases(ctx, rows: int) -> list[tuple]:
    """(background, windowed cut-out layer, parameters, full-frame alpha) of the first `rows` rows."""
    from builder.contract.plan import draw_placement
    from builder.rows import augment

    s, r = ctx.settings, ctx.settings.resolution
    cases = []
    for index in range(rows):
        bg_id, fg_id, flip = ctx.plan.inputs_of(index)
        placement = draw_placement(s.seed, index, *ctx.foreground_shapes[fg_id], r, s.scale_min, s.scale_max)
        params = augment.draw_augmentation(s, index, placement)
        window = augment.layer_window(placement, r, params.motion_length)
        layer = augment.windowed_layer(ctx.foreground_cache.placed(fg_id, flip, placement), placement, window)
        alpha = np.zeros((r, r), dtype=np.uint8)
        alpha[window[1]:window[3], window[0]:window[2]] = layer[..., 3]
        cases.append((ctx.pixels.background(bg_id), layer, params, alpha))
    return cases


def part_functions(threshold: int) -> dict:
    from PIL import Image

    from builder.rows import augment

    centre = lambda lay: (lay.shape[1] / 2, lay.shape[0] / 2)  # noqa: E731 - the window's centre
    return {
        "bg colour jitter": lambda bg, lay, p, alpha: augment.color_jitter(bg, p.bg_brightness, p.bg_contrast,
                                                                        p.bg_saturation, p.bg_hue),
        "bg shift": lambda bg, lay, p, alpha: augment.shift_reflect(bg, p.bg_dx, p.bg_dy),
        "bg blur": lambda bg, lay, p, alpha: np.asarray(augment.box_blur(Image.fromarray(bg), p.bg_blur_radius)),
        "bg noise": lambda bg, lay, p, alpha: augment.add_noise(bg, p.bg_noise_sigma, p.noise_seed),
        "fg rotation": lambda bg, lay, p, alpha: augment.rotate_layer(lay, p.fg_angle, centre(lay)),
        "fg colour jitter + harmonise": lambda bg, lay, p, alpha: augment.jitter_layer(
            lay, p.fg_brightness, p.fg_contrast, p.fg_saturation, p.fg_hue,
            augment.harmonize_gain(lay, bg[:lay.shape[0], :lay.shape[1]], p.harmonize_strength)),
        "edge blend (drawn mode)": lambda bg, lay, p, alpha: augment.blend_edge(lay, p, threshold),
        "shadow": lambda bg, lay, p, alpha: augment.cast_shadow(bg, alpha, p.shadow_dx, p.shadow_dy, p.shadow_sigma,
                                                             p.shadow_opacity),
    }


def run(bg_dir: Path, fg_dir: Path, resolution: int, rows: int, rounds: int) -> dict:
    """CPU ms per row of each part, best of `rounds`."""
    from builder.bench.rows import cpu_ms_per_row
    from builder.contract.settings import ContentSettings, RunOptions
    from builder.rows.assets import load_inputs
    from builder.rows.render import RenderContext

    settings = ContentSettings(resolution=resolution, no_depth=True, augment="realistic")
    ctx = RenderContext(settings, load_inputs(settings, RunOptions(bg_dir=bg_dir, fg_dir=fg_dir)))
    cases = _cases(ctx, min(rows, ctx.plan.sample_count))
    parts = part_functions(settings.mask_threshold)
    return {"resolution": resolution, "rows": len(cases), "rounds": rounds,
            "ms_per_row": {name: min(cpu_ms_per_row(lambda i, f=f: f(*cases[i]), range(len(cases)))
                                     for _ in range(rounds)) for name, f in parts.items()}}


def lines(r: dict | None) -> list[str]:
    if not r:
        return []
    return [f"--augment realistic by part, R = {r['resolution']}, {r['rows']} rows, CPU ms per row "
            f"(best of {r['rounds']})", "", "| part | ms/row |", "| --- | ---: |",
            *(f"| {name} | {ms:.2f} |" for name, ms in r["ms_per_row"].items())]
