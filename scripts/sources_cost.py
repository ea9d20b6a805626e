#!/usr/bin/env python
"""A COCO-sourced run against an RGBA-folder run of the same cut-outs (the COCO run's cut-outs, saved as RGBA
PNGs): whole runs without depth, interleaved, CPU seconds per `default` row (listing and decoding the inputs
included) and the generator's own seconds; and the CPU time of listing and decoding the inputs alone.

    python scripts/sources_cost.py [--resolution 224] [--backgrounds 10] [--images 10] [--per-image 2]
                                   [--placements 4] [--rounds 3]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from builder.bench.common import run_generator  # noqa: E402
from builder.bench.inputs import coco_inputs, make_inputs  # noqa: E402
from builder.contract.cli import StrictParser  # noqa: E402
from builder.contract.settings import ContentSettings, RunOptions  # noqa: E402
from builder.rows.assets import load_inputs  # noqa: E402


def load_cpu_s(settings: ContentSettings, run: RunOptions) -> float:
    start = time.process_time()
    load_inputs(settings, run)
    return time.process_time() - start


def main() -> None:
    parser = StrictParser(description=__doc__.split("\n\n")[0])
    for flag, default in (("--resolution", 224), ("--backgrounds", 10), ("--images", 10), ("--per-image", 2),
                          ("--placements", 4), ("--rounds", 3)):
        parser.add_argument(flag, type=int, default=default)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bg_dir, _ = make_inputs(work / "bg", args.backgrounds, 0)
        coco, images = coco_inputs(work / "coco", args.images, args.per_image)
        settings = ContentSettings(resolution=args.resolution, no_depth=True)
        runs = {"coco": RunOptions(bg_dir=bg_dir, fg_coco=coco, fg_images=images),
                "rgba": RunOptions(bg_dir=bg_dir, fg_dir=work / "rgba")}
        (work / "rgba").mkdir()
        for n, rgba in enumerate(load_inputs(settings, runs["coco"]).foregrounds):
            Image.fromarray(rgba, "RGBA").save(work / "rgba" / f"fg_{n:05d}.png")
        flags = {"coco": ["--fg-coco", str(coco), "--fg-images", str(images)], "rgba": ["--fg-dir", str(work / "rgba")]}
        common = ["--bg-dir", str(bg_dir), "--no-depth", "--workers", "0", "--resolution", str(args.resolution),
                  "--placements", str(args.placements)]
        results = {name: [] for name in runs}
        loads = {name: [] for name in runs}
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            for name in runs:
                results[name].append(run_generator([*common, *flags[name]], work / f"out_{name}"))
                loads[name].append(load_cpu_s(settings, runs[name]))
        rows = results["coco"][0]["rows"]
        print(f"{args.backgrounds} backgrounds, {len(list((work / 'rgba').iterdir()))} cut-outs, R={args.resolution}, "
              f"{rows} default rows per run, {args.rounds} rounds interleaved")
        for name in runs:
            cpu = [r["cpu_s"] * 1000 / rows for r in results[name]]
            seconds = [r["seconds"] for r in results[name]]
            print(f"| {name} | CPU ms per row {np.median(cpu):.2f} (runs {[round(c, 2) for c in cpu]}) | generator "
                  f"s {np.median(seconds):.2f} | listing + decoding CPU s {np.median(loads[name]):.3f} |")
        ratio = [c["cpu_s"] / r["cpu_s"] for c, r in zip(results["coco"], results["rgba"])]
        print(f"CPU per row, coco / rgba per round: {[round(x, 3) for x in ratio]}")


if __name__ == "__main__":
    main()
