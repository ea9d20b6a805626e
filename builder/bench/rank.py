"""Section rank: one rank's CPU side on real photographs: --no-depth and the depth path with
builder.testing.standin_depth's estimator, each on 1 core and on all cores (the rank's worker processes), rows/s per
core, and the 400,000-row --no-depth projection on all cores."""

from __future__ import annotations

import time
from pathlib import Path

from builder.bench.common import CLASSIC_ROWS, in_child, median, run_generator


def standin_run(bg_dir: str, fg_dir: str, out: str, placements: int, shard_size: int, cores: int) -> dict:
    """The depth path in this process (one rank, `cores` worker processes) with the stand-in estimator."""
    from builder.run.launch import passive_openmp_waits

    passive_openmp_waits()
    import torch

    from builder.contract.settings import GenerateConfig
    from builder.rows.assets import load_inputs
    from builder.rows.render import RenderContext
    from builder.run.pipeline import Job, run_shards
    from builder.store.output import OutputStore
    from builder.testing.standin_depth import StandinDepthEstimator

    torch.set_num_threads(cores)
    config = GenerateConfig.from_kwargs(bg_dir=bg_dir, fg_dir=fg_dir, output_dir=out, placements=placements,
                                        shard_size=shard_size, overwrite=True)
    job = Job(RenderContext(config.content, load_inputs(config.content, config.run)), StandinDepthEstimator(), 32)
    store = OutputStore(Path(out))
    store.prepare(job.manifest(), overwrite=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    tasks = run_shards(job, store, 0, 1, threads=cores)
    seconds = time.perf_counter() - started
    rows = sum(task.stop - task.start for task in tasks if task.config_name == "default")  # as run_generator counts
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "rows_per_s_per_core": rows / seconds / cores,
            "estimator": type(job.estimator).__module__ + "." + type(job.estimator).__name__,
            "main_process_cpu_s": time.process_time() - cpu_started}


def run(work: Path, bg_dir: Path, fg_dir: Path, placements: int, repeats: int, cores: list[int],
                     shard_size: int) -> dict:
    """Issue 9's CPU goals: one rank on 1 core vs on all cores, --no-depth and the depth path (stand-in depth),
    and the 400,000-row --no-depth projection on all cores."""
    nodepth = ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--no-depth", "--placements", str(placements),
               "--shard-size", str(shard_size)]
    variants = {"1 core": {cores[0]}, f"{len(cores)} cores": set(cores)}
    result: dict = {"nodepth": {}, "depth_standin": {}}
    for name, chosen in variants.items():
        nd = [run_generator(nodepth, work / "rank-nd", cores=chosen) for _ in range(repeats)]
        result["nodepth"][name] = {"rows": nd[0]["rows"], "rows_per_s": median([r["rows"] / r["seconds"] for r in nd])}
        runs = [in_child(standin_run, str(bg_dir), str(fg_dir), str(work / "rank-d"), placements, shard_size,
                         len(chosen), cores=chosen) for _ in range(repeats)]
        result["depth_standin"][name] = {**runs[-1], "rows_per_s": median([r["rows_per_s"] for r in runs])}
        print(f"  rank {name}: no-depth {result['nodepth'][name]['rows_per_s']:.0f} rows/s, depth (stand-in) "
              f"{result['depth_standin'][name]['rows_per_s']:.0f} rows/s", flush=True)
    one, full = result["variants"] = list(variants)
    for path in ("nodepth", "depth_standin"):
        figures = result[path]
        figures["speedup_all_cores"] = figures[full]["rows_per_s"] / figures[one]["rows_per_s"]
        figures["cpu_ms_per_row_1core"] = 1000 / figures[one]["rows_per_s"]
    result["projected_400k_nodepth_minutes_all_cores"] = CLASSIC_ROWS / result["nodepth"][full]["rows_per_s"] / 60
    return result


def lines(r: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not r:
        return []
    rows = []
    for path, label in (("nodepth", "--no-depth"), ("depth_standin", "depth path, stand-in depth")):
        one, full = r["variants"]
        rows.append(f"| one rank, {label}, {full} vs {one} (rows/s) | {r[path][full]['rows_per_s']:.0f} | "
                     f"{r[path][one]['rows_per_s']:.0f} | {r[path]['speedup_all_cores']:.2f}x "
                     f"({r[path]['cpu_ms_per_row_1core']:.2f} ms per row on 1 core) |")
    rows.append(f"| 400,000 rows --no-depth, one rank on all cores (minutes) | "
                 f"{r['projected_400k_nodepth_minutes_all_cores']:.1f} | | |")
    return rows
