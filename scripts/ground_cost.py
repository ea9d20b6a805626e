#!/usr/bin/env python
"""`--placement-mode ground` measured: CPU time per `default` row against uniform (no depth model: rendering,
encoding, statistics), interleaved, on the given backgrounds; and on the demo's scenes with exact depth, the
share of feet on the true floor (ground against uniform), redraws, fallbacks, occlusion, and the ground rule's
precision and recall when the exact maps get noise.

    python scripts/ground_cost.py --bg-dir BG --fg-dir FG [--bg-depth-dir DEPTH] [--resolution 224] [--rows 400]

Without --bg-depth-dir each background gets a plane-prior map (a floor below a horizon at 0.4 R, sky above):
enough to time the work, which does not depend on what the map says much; it says nothing about real scenes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from builder.contract.cli import StrictParser
from builder.contract.plan import draw_placement
from builder.contract.schema import DEFAULT
from builder.contract.settings import ContentSettings, RunOptions
from builder.rows import geometry
from builder.rows.assets import load_inputs
from builder.rows.bg_depth import attach_bg_depths, decode_depth_map, demo_depth_files, fit_depth
from builder.rows.demo import DEMO_BACKGROUNDS, ground_scene
from builder.rows.render import RenderContext, render_sample
from builder.rows.stats import StatsBook


def cpu_ms_per_row(ctx: RenderContext, rows: int) -> float:
    start = time.process_time()
    for index in range(rows):
        render_sample(ctx, index, StatsBook(DEFAULT.peaks))
    return (time.process_time() - start) * 1000 / rows


def plane_prior_maps(bg_dir: Path, folder: Path) -> Path:
    """A floor-plane map per background (its file stem, 400 x 400 .npy): disparity 0 above 0.4 of the height."""
    rows = np.arange(400, dtype=np.float64)
    plane = np.repeat(np.clip((rows - 160) / 240, 0, None)[:, None], 400, axis=1)
    for path in sorted(bg_dir.iterdir()):
        np.save(folder / f"{path.stem}.npy", plane)
    return folder


def contexts(args, depth_dir: Path) -> dict[str, RenderContext]:
    out = {}
    for mode in ("uniform", "ground"):
        settings = ContentSettings(resolution=args.resolution, no_depth=True, placement_mode=mode)
        run = RunOptions(bg_dir=args.bg_dir, fg_dir=args.fg_dir, bg_depth_dir=depth_dir if mode == "ground" else None)
        out[mode] = RenderContext(settings, attach_bg_depths(load_inputs(settings, run), settings, run))
    return out


def cost(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctxs = contexts(args, args.bg_depth_dir or plane_prior_maps(args.bg_dir, Path(tmp)))
        rows = min(args.rows, ctxs["uniform"].plan.sample_count)
        times = {mode: [] for mode in ctxs}
        for mode, ctx in ctxs.items():
            render_sample(ctx, 0, StatsBook(DEFAULT.peaks))  # warm caches like a long run
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            for mode, ctx in ctxs.items():
                times[mode].append(cpu_ms_per_row(ctx, rows))
        ground = ctxs["ground"]
        modes = [ground.ground_placement(i).mode for i in range(rows)]
    best = {mode: min(t) for mode, t in times.items()}
    print(f"R={args.resolution}, {rows} rows, CPU ms per row, best of {args.rounds} interleaved rounds "
          f"(all rounds: {times})")
    print(f"| uniform | {best['uniform']:.2f} |\n| ground | {best['ground']:.2f} |")
    print(f"ratio ground / uniform: {best['ground'] / best['uniform']:.2f}; rows on ground: "
          f"{modes.count('ground')} of {rows}")


def demo_measures(resolution: int, samples: int) -> None:
    """On the demo's scenes (exact depth): feet on the true floor, redraws, fallbacks, occlusion."""
    settings = ContentSettings(resolution=resolution, no_depth=True, placement_mode="ground", placements=samples)
    run = RunOptions(demo=True)
    ctx = RenderContext(settings, attach_bg_depths(load_inputs(settings, run), settings, run))
    floors = [_sampled(ground_scene(i)[2], resolution) for i in range(DEMO_BACKGROUNDS)]
    on_floor, uniform_on_floor, redrawn, occluded, n = 0, 0, 0, [], ctx.plan.sample_count
    for index in range(n):
        bg_id, fg_id, _ = ctx.plan.inputs_of(index)
        placed = ctx.ground_placement(index)
        on_floor += bool(floors[bg_id][placed.foot_y, placed.foot_x])
        redrawn += placed.tries > 1
        fg = ctx.inputs.foregrounds[fg_id]
        uniform = draw_placement(settings.seed, index, *fg.shape[:2], resolution, settings.scale_min,
                                 settings.scale_max)
        foot_x, foot_y = geometry.foot_of(uniform)
        uniform_on_floor += bool(floors[bg_id][foot_y, foot_x])
        footprint = ctx.foreground_cache.placed(fg_id, 0, placed.placement)[..., 3] >= settings.mask_threshold
        occluded.append(1 - geometry.visible_fraction(footprint, placed.placement, placed.hidden))
    occluded = np.array(occluded)
    print(f"demo scenes, R={resolution}, {n} samples: feet on the true floor: ground {on_floor / n:.1%}, uniform "
          f"{uniform_on_floor / n:.1%}; redrawn (less than {geometry.MIN_VISIBLE:.0%} visible at the first draw) "
          f"{redrawn / n:.1%}; partly hidden {np.mean(occluded > 0):.1%}, mean occlusion {occluded.mean():.3f}")


def _sampled(floor: np.ndarray, resolution: int) -> np.ndarray:
    """The true floor at R, sampled exactly as its map is (builder.rows.bg_depth.fit_depth)."""
    return fit_depth(floor.astype(np.float32), None, resolution) > 0.5


def noise_robustness(resolution: int) -> None:
    """The ground rule on the exact demo maps with gaussian noise (sigma as a share of the span) and 8-bit
    levels: precision (ground found on the true floor) and recall (true floor found)."""
    maps = [decode_depth_map(f, None, "disparity", resolution).astype(np.float64) for f in demo_depth_files()]
    floors = [_sampled(ground_scene(i)[2], resolution) for i in range(DEMO_BACKGROUNDS)]
    print("| noise (share of span) | levels | precision | recall |\n| ---: | --- | ---: | ---: |")
    for sigma in (0.0, 0.005, 0.01, 0.02, 0.04):
        for bits in (16, 8):
            found = true = hits = 0
            for n, (depth, floor) in enumerate(zip(maps, floors)):
                noisy = depth + np.random.default_rng(n).normal(0, sigma, depth.shape)
                noisy = np.round((noisy - noisy.min()) / np.ptp(noisy) * (2 ** bits - 1))
                ground = geometry.ground_mask(noisy)
                found, true, hits = found + ground.sum(), true + floor.sum(), hits + (ground & floor).sum()
            print(f"| {sigma:g} | {bits}-bit | {hits / max(found, 1):.3f} | {hits / true:.3f} |")


def main() -> None:
    parser = StrictParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bg-dir", type=Path, required=True)
    parser.add_argument("--fg-dir", type=Path, required=True)
    parser.add_argument("--bg-depth-dir", type=Path, default=None)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cost(args)
    demo_measures(args.resolution, 20)
    noise_robustness(args.resolution)


if __name__ == "__main__":
    main()
