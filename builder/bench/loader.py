"""Section loader: training-loader throughput, decoded and normalised tensor rows per second from
`builder.train.loader.torch_dataset`.

Two datasets are generated first (demo inputs, 4 bg x 3 fg x 2 flips x placements rows): one `--no-depth`,
one with the tiny random depth model at `--depth-input-size 14` (its 16-bit depth PNGs are full R x R, so
decoding costs what real depth costs; random depth compresses worse than real depth, so this is the slow
side). For each: one process reading with no DataLoader workers, pinned to one core (the per-core decode
rate), then `DataLoader(num_workers=1)` and `(num_workers=2)`, batch 64, shuffled, a whole epoch each,
wall time from `iter(loader)` to the last batch (worker start-up included), and rows per CPU-second of all
the processes (the cost of decoding, independent of other load on the machine). Median of the repeats.
The loader's decode per row of the rows section's own rows is in that section.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

from builder.bench.common import generate_command, in_child

BATCH = 64


def generate(out: Path, placements: int, depth_model: Path | None) -> Path:
    """A demo dataset of 24 x placements rows at R = 224 (skipped when `out` already holds one)."""
    if (out / "stats.json").is_file():
        return out
    depth = ["--depth-model", str(depth_model), "--depth-input-size", "14"] if depth_model else ["--no-depth"]
    subprocess.run(generate_command(["--demo", "--placements", str(placements), "--output-dir", str(out), *depth]),
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers are joined at the epoch's end)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rows_per_s(path: Path, workers: int) -> dict:
    """One shuffled epoch through a DataLoader (workers=0: in this process): rows per second of wall time,
    and per CPU second of every process involved (what the decoding costs, whatever else runs beside it)."""
    import torch

    from builder.train.loader import torch_dataset

    dataset = torch_dataset(path, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=workers)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    rows = sum(len(batch["sample_id"]) for batch in loader)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    assert rows == dataset.num_rows, (rows, dataset.num_rows)
    return {"wall": rows / wall, "cpu": rows / cpu}


def one_thread_rows_per_s(path: Path, workers: int, start_method: str) -> dict:
    """`rows_per_s` with torch on one intra-op thread, run by `measure_pinned` in a spawned process, whose
    DataLoader workers are started as the parent's would be (a spawned child's default is spawn: slower)."""
    import multiprocessing

    import torch

    multiprocessing.set_start_method(start_method, force=True)
    torch.set_num_threads(1)
    return rows_per_s(path, workers)


def measure_pinned(path: Path, workers: int, core: int | None) -> dict:
    """`rows_per_s` in a fresh process (optionally pinned to one core), so runs do not share caches."""
    import multiprocessing

    return in_child(one_thread_rows_per_s, path, workers, multiprocessing.get_start_method(),
                    cores=None if core is None else {core})


def run(work: Path, placements: int = 167, repeats: int = 3) -> dict:
    """Rows/s of the loader on a no-depth and a with-depth dataset: 1 core in-process, 1 and 2 workers."""
    from builder.testing.random_model import save_random_depth_model

    work.mkdir(parents=True, exist_ok=True)
    model = work / "tiny_model"
    if not (model / "config.json").is_file():
        save_random_depth_model(model)
    datasets = {"no depth": generate(work / "no_depth", placements, None),
                "with depth": generate(work / "with_depth", placements, model)}
    report = {"rows": 4 * 3 * 2 * placements, "resolution": 224, "batch_size": BATCH, "repeats": repeats,
              "cores": len(os.sched_getaffinity(0)), "load_average_before": os.getloadavg()[0], "results": {}}
    for name, path in datasets.items():
        runs = {"in-process, 1 core": [measure_pinned(path, 0, 0) for _ in range(repeats)],
                "1 worker": [measure_pinned(path, 1, None) for _ in range(repeats)],
                "2 workers": [measure_pinned(path, 2, None) for _ in range(repeats)]}
        medians = {key: statistics.median(run["wall"] for run in values) for key, values in runs.items()}
        per_cpu = {key: statistics.median(run["cpu"] for run in values) for key, values in runs.items()}
        report["results"][name] = {"runs": runs, "median_rows_per_s": medians,
                                   "median_rows_per_cpu_s": per_cpu,
                                   "scaling_2_over_1": medians["2 workers"] / medians["1 worker"]}
    report["load_average_after"] = os.getloadavg()[0]
    return report


def lines(report: dict | None) -> list[str]:
    if not report:
        return []
    out = ["| dataset | in-process, 1 core | 1 worker | 2 workers | 2 / 1 workers "
           "| rows per CPU-second (1 core / 1 w / 2 w) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, result in report["results"].items():
        m, c = result["median_rows_per_s"], result["median_rows_per_cpu_s"]
        out.append(f"| {name} | {m['in-process, 1 core']:,.0f} | {m['1 worker']:,.0f} | {m['2 workers']:,.0f} "
                   f"| {result['scaling_2_over_1']:.2f}x | {' / '.join(f'{v:,.0f}' for v in c.values())} |")
    return [f"training loader, {report['rows']:,} rows at R = 224, batch {BATCH}, rows/s (median of "
            f"{report['repeats']})", "", *out]
