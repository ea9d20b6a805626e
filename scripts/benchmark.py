"""Throughput benchmark: our generator side by side with the seed-style (notebook) approach, in one run.

    python scripts/benchmark.py --output bench.json          # full run (~12 min on 2 CPU cores)
    python scripts/benchmark.py --quick --output quick.json  # smoke run (< 1 min)

Sections, one module each in bench/ (each figure is the median of --repeats runs, measured in the same run on
the same inputs):
  composite  no-depth path (composite + mask + encode + statistics + write) vs a seed-style baseline
             (per sample: re-open the background and foreground files, PIL paste with the alpha, a new
             black L image pasted with the alpha as mask, both saved as JPEG optimize=True into a stored
             zip); one core (both pinned to core 0) and all cores.
  depth      our batched DepthEstimator vs transformers pipeline("depth-estimation") called once per
             image, same model (Depth-Anything-V2-Small architecture at random weights), same images.
  e2e        scripts/generate.py with the tiny random model, 1 process and `accelerate launch --cpu
             --num_processes 2`, as subprocesses; projection for 400,000 rows; peak RSS per process.
  memory     peak RSS of the no-depth generator at 1x and 4x the rows (many shards): flat or not.
  rank       one rank's CPU side (issue 9) on real photographs: --no-depth and the depth path with a stand-in
             depth estimator (builder.testing.standin_depth, or a local one), each on 1 core and on all cores (the
             rank's worker processes), rows/s per core, and the 400,000-row --no-depth projection on all cores.
  gpu        only on CUDA (otherwise it says so and the run goes on): estimator maps/s at 518 for batch sizes
             32-256 in bf16 and fp16, compiled and not; pipeline("depth-estimation") per image; end-to-end
             rows/s on 1 GPU and on all GPUs (torchrun); GPU utilisation and peak memory. Bounded to ~8 minutes
             (--gpu-budget-s: when it stops starting new measurements).

Photographs: --photos DIR, else the ones scikit-image ships in its package (`pip install scikit-image`; only
its data files are read): backgrounds are square crops of them, cut-outs elliptical soft-edged crops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.bench import composite, depth, e2e, gpu, memory, rank  # noqa: E402
from builder.bench.common import RESOLUTION  # noqa: E402
from builder.bench.inputs import make_inputs, photo_section_inputs  # noqa: E402
from builder.bench.report import machine, table  # noqa: E402
from builder.contract.cli import StrictParser  # noqa: E402

SECTIONS = ("composite", "depth", "e2e", "memory", "rank", "gpu")


def parse_args(argv) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("benchmark.json"), help="where the JSON report goes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; 1 with --quick)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of photographs for the rank and gpu sections (default: scikit-image's)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    parser.add_argument("--gpu-budget-s", type=float, default=gpu.GPU_BUDGET_S,
                        help="the gpu section starts no new measurement after this many seconds "
                             f"(default {gpu.GPU_BUDGET_S:g})")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sections = set(args.sections.split(","))
    repeats = args.repeats or (1 if args.quick else 3)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    # sizes: classic 100 x 100 x 2 x 20 scaled down
    if args.quick:
        n_bg, n_fg, k, depth_count, depth_sizes, arch, e2e_k = 3, 3, 4, 2, [224], "tiny", 1
    else:
        # 9,600 composites per run: long enough that start-up and the card step do not dominate the projection
        n_bg, n_fg, k, depth_count, depth_sizes, arch, e2e_k = 10, 10, 48, 8, [518, 224], "v2-small", 2
    # the composite runs are seconds long: more repeats there, so a burst of other load is outvoted
    composite_repeats = args.repeats or (1 if args.quick else 5)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fgbg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "quick": args.quick, "repeats": repeats,
              "inputs": {"backgrounds": n_bg, "foregrounds": n_fg, "placements": k, "resolution": RESOLUTION}}
    print(f"benchmark on {report['machine']['cpu']} ({len(cores)} cores), {report['machine']['date_utc']}; "
          f"work dir {work}", flush=True)
    try:
        bg_dir, fg_dir = make_inputs(work / "inputs", n_bg, n_fg)
        shard_size = 200 if args.quick else 1000
        if "composite" in sections:
            report["composite"] = composite.run(work, bg_dir, fg_dir, k, composite_repeats, cores, shard_size)
        if "depth" in sections:
            report["depth"] = depth.run(work, depth_sizes, depth_count, repeats, arch, cores)
        if "e2e" in sections:
            report["e2e"] = e2e.run(work, bg_dir, fg_dir, e2e_k, 56 if args.quick else 518, repeats, cores,
                                    shard_size=100)
        if "memory" in sections:
            report["memory"] = memory.run(work, bg_dir, fg_dir, max(1, k // 2), shard_size=100)
        if "rank" in sections:
            report["rank"] = rank.run(work, *photo_section_inputs(work, args.photos, report), k, repeats, cores,
                                      shard_size)
        if "gpu" in sections:
            report["gpu"] = gpu.run(work, lambda: photo_section_inputs(work, args.photos, report),
                                    2 if args.quick else 40, args.gpu_budget_s)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    text = table(report)
    report["table_markdown"] = text
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
