"""Section e2e: scripts/generate.py with the tiny random model, 1 process, `accelerate launch --cpu
--num_processes N` and torchrun, as subprocesses; projection for 400,000 rows; peak RSS per process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from builder.bench.common import CLASSIC_ROWS, ROOT, in_child, median, timed_subprocess


def run(work: Path, bg_dir: Path, fg_dir: Path, placements: int, input_size: int, repeats: int,
                cores: list[int], shard_size: int) -> dict:
    from builder.run.launch import torchrun_command
    from builder.testing.random_model import save_random_depth_model

    model_dir = work / "model-tiny"
    if not model_dir.exists():
        in_child(save_random_depth_model, str(model_dir), "tiny")
    n_bg, n_fg = len(list(bg_dir.iterdir())), len(list(fg_dir.iterdir()))
    rows = n_bg * n_fg * 2 * placements + n_bg + n_fg
    script = str(ROOT / "scripts" / "generate.py")

    def args(out: Path) -> list[str]:
        return ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--placements", str(placements), "--depth-model",
                str(model_dir), "--depth-input-size", str(input_size), "--shard-size", str(shard_size), "--overwrite",
                "--output-dir", str(out), "--summary-json", str(out.with_name(out.name + ".summary.json"))]

    n = len(cores)
    variants = {"1 process": lambda out: [sys.executable, script, *args(out)]}
    if n > 1:
        variants[f"accelerate launch --cpu --num_processes {n}"] = lambda out: [
            sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(n), "--num_machines",
            "1", "--mixed_precision", "no", "--dynamo_backend", "no", script, *args(out)]
        variants[f"{n} processes (torchrun)"] = lambda out: torchrun_command(script, args(out), n)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(repeats):
        for number, (name, command) in enumerate(variants.items()):
            out = work / f"e2e{number}"
            run = timed_subprocess(command(out))
            run["summary"] = json.loads(out.with_name(out.name + ".summary.json").read_text())
            runs[name].append(run)
            print(f"  e2e {name} repeat {r + 1}/{repeats}: {rows / run['wall_s']:.1f} rows/s wall, "
                  f"{run['summary']['rows_per_s']} rows/s after start-up, peak RSS {run['peak_rss_mb']} MB", flush=True)
    result = {"rows": rows, "depth_input_size": input_size, "model": "random-weight tiny"}
    for name, values in runs.items():
        inner_rate = median([v["summary"]["rows_per_s"] for v in values])
        result[name] = {"processes_reported": values[-1]["summary"]["processes"],
                        "rows_per_s_wall": median([rows / v["wall_s"] for v in values]),
                        "rows_per_s_after_startup": inner_rate,
                        "projected_400k_hours": CLASSIC_ROWS / inner_rate / 3600,
                        "peak_rss_mb": values[-1]["peak_rss_mb"], "wall_s": [v["wall_s"] for v in values]}
    return result


def lines(e: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not e:
        return []
    rows = []
    for name in [k for k in e if "process" in k]:
        r = e[name]
        rows.append(f"| generate.py, tiny model @ {e['depth_input_size']}, {name} (rows/s; wall incl. start-up) "
                     f"| {r['rows_per_s_after_startup']:.1f} ({r['rows_per_s_wall']:.1f}) | | "
                     f"{r['processes_reported']} process(es) ran; peak RSS {r['peak_rss_mb']} MB |")
        rows.append(f"| projected 400,000 rows, {name} (hours) | {r['projected_400k_hours']:.2f} | | |")
    return rows
