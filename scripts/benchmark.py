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
  scale      memory and start-up against the number of inputs: a `--rows 2000 --no-depth` run at R = 224 on 10
             backgrounds and 10 COCO cut-outs, then on 2,000 backgrounds (640 x 480 JPEGs) and 20,000 COCO
             cut-outs of 100-140 px (generated: builder/bench/scale_inputs.py, ~6 minutes on 2 cores); peak RSS
             of each process, seconds to the first row, rows/s after it (--quick: 40 backgrounds, 200 cut-outs,
             200 rows).
  rank       one rank's CPU side (issue 9) on real photographs: --no-depth and the depth path with a stand-in
             depth estimator (builder.testing.standin_depth, or a local one), each on 1 core and on all cores (the
             rank's worker processes), rows/s per core, and the 400,000-row --no-depth projection on all cores.
  gpu        only on CUDA (otherwise it says so and the run goes on): estimator maps/s at 518 for batch sizes
             32-256 in bf16 and fp16, compiled and not; pipeline("depth-estimation") per image; end-to-end
             rows/s on 1 GPU and on all GPUs (torchrun); GPU utilisation and peak memory. Bounded to ~8 minutes
             (--gpu-budget-s: when it stops starting new measurements).
  rows       CPU ms per `default` row of each option (none, realistic, ground, realistic + ground, objects 2-3,
             realistic + ground + objects 2-3) without depth and with 16-bit depth storage of a fixed map, the
             training loader's decode of a row, and the seed-style loop as reference: one process pinned to one
             core, CPU time, interleaved rounds (a few minutes); checked against benchmarks/budget.json.
             Needs photographs.
  augment    each `--augment realistic` part alone, CPU ms per row (photographs).
  ground     `--placement-mode ground` on the demo's scenes with exact depth: feet on the true floor, redraws,
             occlusion; the ground rule's precision and recall on noisy and 8-bit maps.
  coco       the COCO export of an `--objects 2-3` dataset, seconds per 10,000 rows (photographs).
  sources    cut-outs from a COCO file against an RGBA folder of the same cut-outs: whole `--no-depth` runs,
             interleaved, CPU ms per row, and the CPU seconds of listing and decoding the inputs.
  loader     the training loader: rows/s in-process on 1 core, with 1 and 2 DataLoader workers, with and without
             16-bit depth (demo inputs; a few minutes).

Photographs: --photos DIR, else the ones scikit-image ships in its package (`pip install scikit-image`; only
its data files are read): backgrounds are square crops of them, cut-outs elliptical soft-edged crops.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.bench import (augment_parts, coco_export, composite, depth, e2e, gpu, ground, loader,  # noqa: E402
                           memory, rank, rows, scale, sources)
from builder.bench.common import RESOLUTION, ROOT  # noqa: E402
from builder.bench.inputs import make_inputs, photo_dir, photo_section_inputs  # noqa: E402
from builder.bench.report import machine, table  # noqa: E402
from builder.contract.cli import StrictParser  # noqa: E402

BUDGET = ROOT / "benchmarks" / "budget.json"
SECTIONS = ("composite", "depth", "e2e", "memory", "scale", "rank", "gpu", "rows", "augment", "ground", "coco",
            "sources", "loader")
PHOTO_SECTIONS = {"rows", "augment", "coco"}  # refused without photographs (the others fall back to the demo inputs)


def parse_args(argv) -> argparse.Namespace:
    parser = StrictParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("benchmark.json"), help="where the JSON report goes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; 1 with --quick)")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; without photographs all "
                             f"but {','.join(sorted(PHOTO_SECTIONS))})")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of photographs for the rank, gpu, rows, augment and coco sections (default: "
                             "scikit-image's)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows section: rows per variant and round (default 200; 40 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rows section: interleaved rounds, the median is reported (default 5; 1 with --quick)")
    parser.add_argument("--core", type=int, default=None,
                        help="rows section: the core it is pinned to (default: the last one this process may use)")
    parser.add_argument("--budget", type=Path, default=BUDGET,
                        help=f"rows section: accepted ms per row per variant (default {BUDGET.relative_to(ROOT)})")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    parser.add_argument("--gpu-budget-s", type=float, default=gpu.GPU_BUDGET_S,
                        help="the gpu section starts no new measurement after this many seconds "
                             f"(default {gpu.GPU_BUDGET_S:g})")
    args = parser.parse_args(argv)
    if args.sections is None:
        args.sections = [name for name in SECTIONS if name not in PHOTO_SECTIONS or photo_dir(args.photos)]
        return args
    args.sections = args.sections.split(",")
    if unknown := [name for name in args.sections if name not in SECTIONS]:
        parser.error(f"--sections: unknown section(s) {', '.join(unknown)}; choose from {','.join(SECTIONS)}")
    if PHOTO_SECTIONS.intersection(args.sections) and photo_dir(args.photos) is None:
        parser.error(f"sections {','.join(sorted(PHOTO_SECTIONS))} measure on photographs and none were found: pass "
                     "--photos DIR (JPEG or PNG files), or pip install scikit-image (its bundled photographs are read)")
    return args


def run_row_sections(args, sections: set[str], work: Path, report: dict, cores: list[int], repeats: int,
                     photos) -> None:
    """The sections that measure rows and their parts (rows, augment, coco on photographs), ground placement and
    the training loader; `photos()`: the photograph inputs shared with rank and gpu."""
    if PHOTO_SECTIONS & sections:
        photo_bg, photo_fg = photos()
    if "rows" in sections:
        report["rows"] = rows.run(photo_bg, photo_fg, cores[-1] if args.core is None else args.core,
                                  args.rows or (40 if args.quick else 200), args.rounds or (1 if args.quick else 5),
                                  args.budget if args.budget.is_file() else None)
    if "augment" in sections:
        report["augment"] = augment_parts.run(photo_bg, photo_fg, RESOLUTION, 40 if args.quick else 300, repeats)
    if "ground" in sections:
        report["ground"] = ground.run(RESOLUTION, 2 if args.quick else 20)
    if "coco" in sections:
        report["coco"] = coco_export.run(work, photo_bg, photo_fg, RESOLUTION, 200 if args.quick else 1000)
    if "loader" in sections:
        report["loader"] = loader.run(work / "loader", 2 if args.quick else 167, repeats)


def main(argv=None) -> int:
    args = parse_args(argv)
    sections = set(args.sections)
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
    # the 10 x 10 photograph crops, made once on first use by rank, gpu or the row sections
    photos = functools.cache(lambda: photo_section_inputs(work, args.photos, report))
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
        if "scale" in sections:
            report["scale"] = scale.run(work, *((40, 200, 200) if args.quick else (2000, 20000, 2000)))
        if "rank" in sections:
            report["rank"] = rank.run(work, *photos(), k, repeats, cores, shard_size)
        if "gpu" in sections:
            report["gpu"] = gpu.run(work, photos, 2 if args.quick else 40, args.gpu_budget_s)
        if "sources" in sections:
            report["sources"] = sources.run(work, bg_dir, RESOLUTION, 2 if args.quick else 10, 2,
                                            1 if args.quick else 2, 1 if args.quick else 3)
        run_row_sections(args, sections, work, report, cores, repeats, photos)
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
