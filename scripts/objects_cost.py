#!/usr/bin/env python
"""`--objects 2-3` measured: CPU time per `default` row against one object (no depth model: rendering, encoding,
statistics), interleaved, on photographs; and the COCO export's time per row, scaled to 10,000 rows.

    python scripts/objects_cost.py [--photos DIR] [--resolution 224] [--rows 200] [--export-rows 1000]
                                   [--augment realistic] (--export-rows 0: no export)

Photographs: --photos, else scikit-image's bundled ones (builder.bench.inputs.photo_dir); 10 backgrounds, 10 cut-outs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.bench.inputs import photo_dir, photo_inputs  # noqa: E402
from builder.contract.cli import StrictParser  # noqa: E402
from builder.contract.schema import DEFAULT  # noqa: E402
from builder.contract.settings import ContentSettings, RunOptions  # noqa: E402
from builder.rows.assets import load_inputs  # noqa: E402
from builder.rows.render import RenderContext, render_sample  # noqa: E402
from builder.rows.stats import StatsBook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def cpu_ms_per_row(ctx: RenderContext, rows: int) -> float:
    """Over `rows` rows spread evenly over the sample space (every background and cut-out)."""
    indices = range(0, ctx.plan.sample_count, ctx.plan.sample_count // rows)[:rows]
    start = time.process_time()
    for index in indices:
        render_sample(ctx, index, StatsBook(DEFAULT.peaks))
    return (time.process_time() - start) * 1000 / len(indices)


def cost(args, bg_dir: Path, fg_dir: Path) -> None:
    ctxs = {}
    for objects in ("1", "2-3"):
        settings = ContentSettings(resolution=args.resolution, no_depth=True, objects=objects, augment=args.augment)
        ctxs[objects] = RenderContext(settings, load_inputs(settings, RunOptions(bg_dir=bg_dir, fg_dir=fg_dir)))
    rows = min(args.rows, ctxs["1"].plan.sample_count)
    for ctx in ctxs.values():
        cpu_ms_per_row(ctx, rows)  # warm the cut-out cache like a long run
    times = {objects: [] for objects in ctxs}
    for _ in range(args.rounds):  # interleaved: both see the same machine load
        for objects, ctx in ctxs.items():
            times[objects].append(cpu_ms_per_row(ctx, rows))
    ratios = [b / a for a, b in zip(times["1"], times["2-3"])]
    print(f"R={args.resolution}, --augment {args.augment}, {rows} rows, CPU ms per row per round (interleaved): "
          f"{times}")
    print(f"| --objects 1 | {min(times['1']):.2f} |\n| --objects 2-3 | {min(times['2-3']):.2f} |")
    print(f"ratio 2-3 / 1 per round: {[round(r, 2) for r in ratios]}; median {sorted(ratios)[len(ratios) // 2]:.2f}")


def export_time(args, bg_dir: Path, fg_dir: Path, work: Path) -> None:
    placements = max(1, args.export_rows // 200)  # 10 x 10 pairs x 2 flips
    out = work / "out"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--bg-dir", str(bg_dir), "--fg-dir",
                    str(fg_dir), "--no-depth", "--objects", "2-3", "--placements", str(placements), "--resolution",
                    str(args.resolution), "--output-dir", str(out)], check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_coco.py"), str(out), str(work / "coco")],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    rows = 200 * placements
    print(f"COCO export of {rows} rows: {wall:.1f} s wall, {wall / rows * 10_000:.0f} s per 10,000 rows (scaled)")


def main() -> None:
    parser = StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=1000)
    parser.add_argument("--augment", default="none", help="measure both object counts with this --augment")
    args = parser.parse_args()
    photos = photo_dir(args.photos)
    if photos is None:
        raise SystemExit("no photographs: pip install scikit-image, or pass --photos DIR")
    with tempfile.TemporaryDirectory() as tmp:
        bg_dir, fg_dir = photo_inputs(Path(tmp) / "in", photos, 10, 10)
        cost(args, bg_dir, fg_dir)
        if args.export_rows:
            export_time(args, bg_dir, fg_dir, Path(tmp))


if __name__ == "__main__":
    main()
