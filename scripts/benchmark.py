"""Throughput benchmark: our generator side by side with the seed-style (notebook) approach, in one run.

    python scripts/benchmark.py --output bench.json          # full run (~12 min on 2 CPU cores)
    python scripts/benchmark.py --quick --output quick.json  # smoke run (< 1 min)

Sections (each figure is the median of --repeats runs, measured in the same run on the same inputs):
  composite  no-depth path (composite + mask + encode + statistics + write) vs a seed-style baseline
             (per sample: re-open the background and foreground files, PIL paste with the alpha, a new
             black L image pasted with the alpha as mask, both saved as JPEG optimize=True into a stored
             zip); one core (both pinned to core 0) and all cores.
  depth      our batched DepthEstimator vs transformers pipeline("depth-estimation") called once per
             image, same model (Depth-Anything-V2-Small architecture at random weights), same images.
  e2e        scripts/generate.py with the tiny random model, 1 process and `accelerate launch --cpu
             --num_processes 2`, as subprocesses; projection for 400,000 rows; peak RSS per process.
  memory     peak RSS of the no-depth generator at 1x and 4x the rows (many shards): flat or not.
  gpu        only when CUDA is available (otherwise reported as not lent).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSIC_ROWS = 400_000  # 100 backgrounds x 100 foregrounds x 2 flips x 20 placements
RESOLUTION = 224


# ----------------------------------------------------------------------------------------------- inputs

def make_inputs(folder: Path, n_bg: int, n_fg: int) -> tuple[Path, Path]:
    """Classic-style inputs with real encoded files: pre-resized R x R JPEG backgrounds, RGBA PNG cut-outs."""
    from PIL import Image

    from builder.demo import demo_background, demo_foreground

    bg_dir, fg_dir = folder / "bg", folder / "fg"
    bg_dir.mkdir(parents=True, exist_ok=True)
    fg_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        image = demo_background(100 + i).resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS)
        image.save(bg_dir / f"bg_{i:03d}.jpg", quality=95)
    for i in range(n_fg):
        image = demo_foreground(100 + i, size=160 + 8 * (i % 5))
        image.save(fg_dir / f"fg_{i:03d}.png")
    return bg_dir, fg_dir


# --------------------------------------------------------------------------------------------- helpers

def pin(cores: set[int] | None) -> None:
    if cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target, args, cores, queue):
    pin(cores)
    try:
        queue.put(("ok", target(*args)))
    except BaseException as err:  # report, never hang the parent
        import traceback

        queue.put(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


def in_child(target, *args, cores: set[int] | None = None):
    """Run target(*args) in a fresh spawned process (optionally pinned), return its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(target, args, cores, queue))
    process.start()
    status, value = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(value)
    return value


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class RssPoller:
    """Peak RSS (VmHWM) of every descendant of this process, polled while a subprocess runs."""

    def __init__(self, root_pid: int):
        self.root_pid, self.peaks, self._stop = root_pid, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def _run(self):
        while not self._stop.is_set():
            for pid in self._descendants():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        kb = int(line.split()[1])
                        if kb > self.peaks.get(pid, (0, ""))[0]:
                            self.peaks[pid] = (kb, cmd)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def python_peaks_mb(self) -> list[float]:
        """Peaks of the Python processes doing the work (the launcher, if any, listed too)."""
        return sorted((round(kb / 1024) for kb, cmd in self.peaks.values() if "python" in cmd or "accelerate" in cmd),
                      reverse=True)


# ----------------------------------------------------------------------------------- 1. composite path

def seed_style(bg_dir: str, fg_dir: str, out_zip: str, placements: int, seed: int = 0) -> dict:
    """The classic notebook loop, one thread: every sample re-opens its inputs, pastes with PIL and saves
    composite and mask as optimised JPEGs into a stored zip."""
    from PIL import Image

    rng = random.Random(seed)
    bgs, fgs = sorted(Path(bg_dir).iterdir()), sorted(Path(fg_dir).iterdir())
    started, cpu_started, count = time.perf_counter(), time.process_time(), 0
    with zipfile.ZipFile(out_zip, "w", compression=zipfile.ZIP_STORED) as archive:
        for bg_path in bgs:
            for fg_path in fgs:
                for flip in (False, True):
                    for k in range(placements):
                        bg = Image.open(bg_path).convert("RGB")
                        fg = Image.open(fg_path).convert("RGBA")
                        if flip:
                            fg = fg.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                        longer = round(rng.uniform(0.3, 0.6) * RESOLUTION)
                        w, h = fg.size
                        size = (longer, max(1, round(h * longer / w))) if w >= h else (max(1, round(w * longer / h)), longer)
                        fg = fg.resize(size, Image.Resampling.BILINEAR)
                        x, y = rng.randint(0, RESOLUTION - size[0]), rng.randint(0, RESOLUTION - size[1])
                        bg.paste(fg, (x, y), fg)
                        mask = Image.new("L", bg.size, 0)
                        mask.paste(255, (x, y, x + size[0], y + size[1]), fg.getchannel("A"))
                        for name, image in ((f"fg_bg/{count}.jpg", bg), (f"mask/{count}.jpg", mask)):
                            buffer = io.BytesIO()
                            image.save(buffer, format="JPEG", quality=95, optimize=True)
                            archive.writestr(name, buffer.getvalue())
                        count += 1
    elapsed = time.perf_counter() - started
    return {"rows": count, "seconds": elapsed, "cpu_s": time.process_time() - cpu_started,
            "peak_rss_mb": peak_rss_mb()}


def generate_command(args: list[str], processes: int = 1) -> list[str]:
    """scripts/generate.py as a user runs it: plain python for one process, torchrun for several."""
    from builder.launch import torchrun_command

    script = str(ROOT / "scripts" / "generate.py")
    if processes == 1:
        return [sys.executable, script, *args]
    return torchrun_command(script, args, processes, master_port=free_port())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_generator(args: list[str], out_dir: Path, processes: int = 1, cores: set[int] | None = None) -> dict:
    """One whole run (inputs, render, encode, statistics, shards, card) in a subprocess, timed by the generator
    itself after its imports (its JSON summary), with the CPU seconds and peak RSS of every process."""
    summary_path = out_dir.with_name(out_dir.name + ".summary.json")
    command = generate_command([*args, "--output-dir", str(out_dir), "--overwrite", "--summary-json",
                                str(summary_path)], processes)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = timed_subprocess(command, preexec_fn=(lambda: pin(cores)) if cores else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(summary_path.read_text())
    return {"rows": summary["rows"]["default"], "seconds": summary["elapsed_s"], "wall_s": result["wall_s"],
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "processes": summary["processes"], "peak_rss_mb": result["peak_rss_mb"]}


def section_composite(work: Path, bg_dir: Path, fg_dir: Path, placements: int, repeats: int, cores: list[int],
                      shard_size: int) -> dict:
    one = {cores[0]}
    args = ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--no-depth", "--placements", str(placements),
            "--shard-size", str(shard_size)]
    runs: dict[str, list[dict]] = {"baseline_1core": [], "ours_1core": [], "ours_all_cores_1proc": [],
                                   "ours_all_cores_procs": []}
    for r in range(repeats):  # interleaved, so drift in machine load hits every variant alike
        runs["baseline_1core"].append(in_child(seed_style, str(bg_dir), str(fg_dir), str(work / "seed.zip"),
                                               placements, cores=one))
        runs["ours_1core"].append(run_generator(args, work / "ours1", cores=one))
        runs["ours_all_cores_1proc"].append(run_generator(args, work / "oursN", cores=set(cores)))
        if len(cores) > 1:
            runs["ours_all_cores_procs"].append(run_generator(args, work / "oursP", processes=len(cores)))
        print(f"  composite repeat {r + 1}/{repeats}: " + ", ".join(
            f"{k} {v[-1]['rows'] / v[-1]['seconds']:.0f}/s" for k, v in runs.items() if v), flush=True)
    result = {}
    for name, values in runs.items():
        if values:
            rates = [v["rows"] / v["seconds"] for v in values]
            per_cpu = [v["rows"] / v["cpu_s"] for v in values]
            rss = values[-1]["peak_rss_mb"]
            result[name] = {"rows": values[0]["rows"], "samples_per_s": median(rates), "all": rates,
                            "samples_per_cpu_s": median(per_cpu), "processes": values[-1].get("processes", 1),
                            "peak_rss_mb": [round(x) for x in rss] if isinstance(rss, list) else round(rss)}
    base = result["baseline_1core"]["samples_per_s"]
    best_all = max(result[k]["samples_per_s"] for k in ("ours_all_cores_1proc", "ours_all_cores_procs") if k in result)
    result["ratio_1core"] = result["ours_1core"]["samples_per_s"] / base
    # CPU time is far less disturbed by other load on a shared machine than wall time: a cross-check
    result["ratio_per_cpu_s"] = (result["ours_1core"]["samples_per_cpu_s"]
                                 / result["baseline_1core"]["samples_per_cpu_s"])
    result["ratio_all_cores"] = best_all / base
    result["projected_400k_minutes_all_cores"] = CLASSIC_ROWS / best_all / 60
    result["projected_400k_minutes_baseline"] = CLASSIC_ROWS / base / 60
    result["zip_bytes_per_sample_baseline"] = (work / "seed.zip").stat().st_size / result["baseline_1core"]["rows"]
    return result


# ------------------------------------------------------------------------------------------- 2. depth

def depth_images(count: int):
    import numpy as np

    from builder.demo import demo_background, demo_foreground

    images = []
    for i in range(count):
        bg = demo_background(200 + i).resize((RESOLUTION, RESOLUTION))
        fg = demo_foreground(200 + i, 120)
        bg.paste(fg, (50 + 7 * i % 60, 60), fg)
        images.append(np.asarray(bg))
    return np.stack(images)


def depth_compare(model_dir: str, input_size: int, count: int, repeats: int, threads: int) -> dict:
    """Both in this process, after the generator's own process set-up (its OpenMP and allocator settings, made
    before torch is imported, as generate.py makes them), so they apply to the pipeline as well."""
    from builder.launch import passive_openmp_waits, retain_freed_memory

    passive_openmp_waits()
    retain_freed_memory()
    from builder.depth import DepthEstimator
    import numpy as np
    import torch
    from PIL import Image
    from transformers import pipeline

    torch.set_num_threads(threads)
    images = depth_images(count)
    pil_images = [Image.fromarray(a) for a in images]
    estimator = DepthEstimator.load(model_dir, input_size, torch.device("cpu"), "float32")
    pipe = pipeline("depth-estimation", model=model_dir, device="cpu")
    pipe.image_processor.size = {"height": input_size, "width": input_size}
    # warm-up (first calls allocate), and the equality check on the first images
    ours_raw = estimator.predict_raw(images[:2]).numpy()
    ref_raw = np.stack([pipe(im)["predicted_depth"].float().numpy() for im in pil_images[:2]])
    if ref_raw.ndim == 4:
        ref_raw = ref_raw[:, 0]
    rel_err = float(np.abs(ours_raw - ref_raw).max() / (np.abs(ref_raw).max() - np.abs(ref_raw).min() + 1e-12))
    ours_t, pipe_t = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        estimator.predict(images)
        ours_t.append(count / (time.perf_counter() - started))
        started = time.perf_counter()
        for im in pil_images:
            pipe(im)
        pipe_t.append(count / (time.perf_counter() - started))
    return {"input_size": input_size, "images": count, "ours_maps_per_s": median(ours_t), "ours_all": ours_t,
            "pipeline_maps_per_s": median(pipe_t), "pipeline_all": pipe_t,
            "ratio": median(ours_t) / median(pipe_t), "max_abs_diff_over_range": rel_err,
            "peak_rss_mb": peak_rss_mb()}


def section_depth(work: Path, sizes: list[int], count: int, repeats: int, architecture: str, cores: list[int]) -> dict:
    from builder.random_model import save_random_depth_model

    model_dir = work / f"model-{architecture}"
    if not model_dir.exists():
        in_child(save_random_depth_model, str(model_dir), architecture)
    result = {"model": f"random-weight {architecture}"}
    for size in sizes:
        result[str(size)] = in_child(depth_compare, str(model_dir), size, count, repeats, len(cores), cores=set(cores))
        r = result[str(size)]
        print(f"  depth {size}: ours {r['ours_maps_per_s']:.2f} maps/s, pipeline {r['pipeline_maps_per_s']:.2f} "
              f"maps/s (x{r['ratio']:.2f})", flush=True)
    return result


# -------------------------------------------------------------------------------------------- 3. e2e

def timed_subprocess(command: list[str], preexec_fn=None) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TQDM_DISABLE": "1"}, preexec_fn=preexec_fn)
    with RssPoller(process.pid) as poller:
        out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": poller.python_peaks_mb()}


def section_e2e(work: Path, bg_dir: Path, fg_dir: Path, placements: int, input_size: int, repeats: int,
                cores: list[int], shard_size: int) -> dict:
    from builder.launch import torchrun_command
    from builder.random_model import save_random_depth_model

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
        variants[f"{n} processes (torchrun)"] = lambda out: torchrun_command(script, args(out), n,
                                                                             master_port=free_port())
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
                        "rows_per_s_after_startup": inner_rate, "projected_400k_hours": CLASSIC_ROWS / inner_rate / 3600,
                        "peak_rss_mb": values[-1]["peak_rss_mb"], "wall_s": [v["wall_s"] for v in values]}
    return result


# ----------------------------------------------------------------------------------------- 4. memory

def section_memory(work: Path, bg_dir: Path, fg_dir: Path, placements: int, shard_size: int) -> dict:
    """Same run at 1x and 4x the placements with small shards: the peak RSS must not grow with the rows."""
    result = {}
    for factor in (1, 4):
        args = ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--no-depth", "--placements",
                str(placements * factor), "--shard-size", str(shard_size)]
        r = run_generator(args, work / f"mem{factor}")
        result[f"{factor}x"] = {"rows": r["rows"], "shards": -(-r["rows"] // shard_size),
                                "peak_rss_mb": max(r["peak_rss_mb"])}
    result["growth_mb"] = result["4x"]["peak_rss_mb"] - result["1x"]["peak_rss_mb"]
    return result


# ------------------------------------------------------------------------------------------- report

def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                                         * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": gpu, "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__}


def table(report: dict) -> str:
    lines = ["| measurement | ours | seed-style / pipeline | ratio |", "| --- | --- | --- | --- |"]
    c = report.get("composite")
    if c:
        base = c["baseline_1core"]["samples_per_s"]
        lines.append(f"| composite+mask+encode+write, 1 core (samples/s) | {c['ours_1core']['samples_per_s']:.0f} "
                     f"| {base:.0f} | {c['ratio_1core']:.2f}x |")
        lines.append(f"| same, samples per CPU-second (cross-check) | {c['ours_1core']['samples_per_cpu_s']:.0f} "
                     f"| {c['baseline_1core']['samples_per_cpu_s']:.0f} | {c['ratio_per_cpu_s']:.2f}x |")
        lines.append(f"| peak RSS, 1 core (MB) | {max(c['ours_1core']['peak_rss_mb']):.0f} | "
                     f"{c['baseline_1core']['peak_rss_mb']:.0f} | |")
        for key, label in (("ours_all_cores_1proc", "1 process"), ("ours_all_cores_procs", "processes")):
            if key in c:
                lines.append(f"| same, all {report['machine']['cores']} cores, {label} (samples/s) | "
                             f"{c[key]['samples_per_s']:.0f} | {base:.0f} (1 thread) | "
                             f"{c[key]['samples_per_s'] / base:.2f}x (peak RSS {c[key]['peak_rss_mb']} MB) |")
        lines.append(f"| 400,000 composites+masks, all cores (minutes) | {c['projected_400k_minutes_all_cores']:.1f} "
                     f"| {c['projected_400k_minutes_baseline']:.1f} | |")
    d = report.get("depth")
    if d:
        for size in [k for k in d if k.isdigit()]:
            r = d[size]
            lines.append(f"| depth {d['model']} @ {size}, CPU (maps/s) | {r['ours_maps_per_s']:.2f} | "
                         f"{r['pipeline_maps_per_s']:.2f} | {r['ratio']:.2f}x (max diff {r['max_abs_diff_over_range']:.1e}"
                         f" of range; peak RSS {r['peak_rss_mb']:.0f} MB, both in one process) |")
    e = report.get("e2e")
    if e:
        for name in [k for k in e if "process" in k]:
            r = e[name]
            lines.append(f"| generate.py, tiny model @ {e['depth_input_size']}, {name} (rows/s; wall incl. start-up) "
                         f"| {r['rows_per_s_after_startup']:.1f} ({r['rows_per_s_wall']:.1f}) | | "
                         f"{r['processes_reported']} process(es) ran; peak RSS {r['peak_rss_mb']} MB |")
            lines.append(f"| projected 400,000 rows, {name} (hours) | {r['projected_400k_hours']:.2f} | | |")
    m = report.get("memory")
    if m:
        lines.append(f"| peak RSS no-depth, {m['1x']['shards']} vs {m['4x']['shards']} shards (MB) | "
                     f"{m['1x']['peak_rss_mb']} vs {m['4x']['peak_rss_mb']} | | growth {m['growth_mb']} MB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("benchmark.json"), help="where the JSON report goes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; 1 with --quick)")
    parser.add_argument("--sections", default="composite,depth,e2e,memory,gpu",
                        help="comma-separated subset of composite,depth,e2e,memory,gpu")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    args = parser.parse_args(argv)
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
            report["composite"] = section_composite(work, bg_dir, fg_dir, k, composite_repeats, cores, shard_size)
        if "depth" in sections:
            report["depth"] = section_depth(work, depth_sizes, depth_count, repeats, arch, cores)
        if "e2e" in sections:
            report["e2e"] = section_e2e(work, bg_dir, fg_dir, e2e_k, 56 if args.quick else 518, repeats, cores,
                                        shard_size=100)
        if "memory" in sections:
            report["memory"] = section_memory(work, bg_dir, fg_dir, max(1, k // 2), shard_size=100)
        if "gpu" in sections:
            import torch

            report["gpu"] = ({"note": "CUDA available but the GPU section is not implemented in this version"}
                             if torch.cuda.is_available() else {"note": "no GPU lent: CPU figures only"})
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
