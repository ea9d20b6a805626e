"""Section ground: what `--placement-mode ground` does on the demo's scenes with exact depth (feet on the true floor
against uniform placement, redraws, occlusion), and the ground rule's precision and recall when the exact maps get
noise or 8-bit levels. Its cost per row is in the rows section."""

from __future__ import annotations

import numpy as np

NOISE_SIGMAS = (0.0, 0.005, 0.01, 0.02, 0.04)  # as a share of the map's span


def _true_floor(bg_id: int, resolution: int) -> np.ndarray:
    """The demo scene's true floor at R, sampled exactly as its map is (builder.rows.bg_depth.fit_depth)."""
    from builder.rows.bg_depth import fit_depth
    from builder.rows.demo import ground_scene

    return fit_depth(ground_scene(bg_id)[2].astype(np.float32), None, resolution) > 0.5


def demo_measures(resolution: int, samples: int) -> dict:
    """On the demo's scenes (exact depth): feet on the true floor, redraws, occlusion."""
    from builder.contract.plan import draw_placement
    from builder.contract.settings import ContentSettings, RunOptions
    from builder.rows import geometry
    from builder.rows.assets import load_inputs
    from builder.rows.bg_depth import attach_bg_depths
    from builder.rows.demo import DEMO_BACKGROUNDS
    from builder.rows.render import RenderContext

    settings = ContentSettings(resolution=resolution, no_depth=True, placement_mode="ground", placements=samples)
    run = RunOptions(demo=True)
    ctx = RenderContext(settings, attach_bg_depths(load_inputs(settings, run), settings, run))
    floors = [_true_floor(i, resolution) for i in range(DEMO_BACKGROUNDS)]
    on_floor, uniform_on_floor, redrawn, occluded, n = 0, 0, 0, [], ctx.plan.sample_count
    for index in range(n):
        bg_id, fg_id, flip = ctx.plan.inputs_of(index)
        placed = ctx.rule.place(index, bg_id, fg_id, flip)
        on_floor += bool(floors[bg_id][placed.foot[1], placed.foot[0]])
        redrawn += placed.tries > 1
        uniform = draw_placement(settings.seed, index, *ctx.foreground_shapes[fg_id], resolution, settings.scale_min,
                                 settings.scale_max)
        foot_x, foot_y = geometry.foot_of(uniform)
        uniform_on_floor += bool(floors[bg_id][foot_y, foot_x])
        footprint = ctx.foreground_cache.placed(fg_id, 0, placed.placement)[..., 3] >= settings.mask_threshold
        occluded.append(1 - geometry.visible_fraction(footprint, placed.placement, placed.hidden))
    occluded = np.array(occluded)
    return {"samples": n, "feet_on_floor_ground": on_floor / n, "feet_on_floor_uniform": uniform_on_floor / n,
            "redrawn": redrawn / n, "min_visible": geometry.MIN_VISIBLE, "partly_hidden": float(np.mean(occluded > 0)),
            "mean_occlusion": float(occluded.mean())}


def noise_robustness(resolution: int) -> list[dict]:
    """The ground rule on the exact demo maps with gaussian noise and 16- or 8-bit levels: precision (ground found
    on the true floor) and recall (true floor found)."""
    from builder.rows import geometry
    from builder.rows.bg_depth import decode_depth_map, demo_depth_files
    from builder.rows.demo import DEMO_BACKGROUNDS

    maps = [decode_depth_map(f, None, "disparity", resolution).astype(np.float64) for f in demo_depth_files()]
    floors = [_true_floor(i, resolution) for i in range(DEMO_BACKGROUNDS)]
    results = []
    for sigma in NOISE_SIGMAS:
        for bits in (16, 8):
            found = true = hits = 0
            for n, (depth, floor) in enumerate(zip(maps, floors)):
                noisy = depth + np.random.default_rng(n).normal(0, sigma, depth.shape)
                noisy = np.round((noisy - noisy.min()) / np.ptp(noisy) * (2 ** bits - 1))
                ground = geometry.ground_mask(noisy)
                found, true, hits = found + ground.sum(), true + floor.sum(), hits + (ground & floor).sum()
            results.append({"sigma": sigma, "bits": bits, "precision": float(hits / max(found, 1)),
                            "recall": float(hits / true)})
    return results


def run(resolution: int, samples: int) -> dict:
    return {"resolution": resolution, "demo": demo_measures(resolution, samples),
            "noise": noise_robustness(resolution)}


def lines(r: dict | None) -> list[str]:
    if not r:
        return []
    d = r["demo"]
    out = [f"ground placement on the demo scenes, R = {r['resolution']}, {d['samples']} samples: feet on the true "
           f"floor: ground {d['feet_on_floor_ground']:.1%}, uniform {d['feet_on_floor_uniform']:.1%}; redrawn (less "
           f"than {d['min_visible']:.0%} visible at the first draw) {d['redrawn']:.1%}; partly hidden "
           f"{d['partly_hidden']:.1%}, mean occlusion {d['mean_occlusion']:.3f}", "",
           "| noise (share of span) | levels | precision | recall |", "| ---: | --- | ---: | ---: |"]
    out += [f"| {n['sigma']:g} | {n['bits']}-bit | {n['precision']:.3f} | {n['recall']:.3f} |" for n in r["noise"]]
    return out
