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
  rank       one rank's CPU side (issue 9) on real photographs: --no-depth and the depth path with a stand-in
             depth estimator (builder.standin_depth, or a local one), each on 1 core and on all cores (the
             rank's worker processes), rows/s per core, and the 400,000-row --no-depth projection on all cores.
  gpu        only on CUDA (otherwise it says so and the run goes on): estimator maps/s at 518 for batch sizes
             32-256 in bf16 and fp16, compiled and not; pipeline("depth-estimation") per image; end-to-end
             rows/s on 1 GPU and on all GPUs (torchrun); GPU utilisation and peak memory. Bounded to ~8 minutes.

Photographs: --photos DIR, else the ones scikit-image ships in its package (`pip install scikit-image`; only
its data files are read): backgrounds are square crops of them, cut-outs elliptical soft-edged crops.
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


class Poller:
    """Calls `poll()` every `interval` seconds in a background thread while the `with` block runs."""

    interval = 0.5

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class RssPoller(Poller):
    """Peak RSS (VmHWM) of every descendant of this process, polled while a subprocess runs."""

    interval = 0.2

    def __init__(self, root_pid: int):
        super().__init__()
        self.root_pid, self.peaks = root_pid, {}

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

    def poll(self) -> None:
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


# -------------------------------------------------------------------------------------- photographs

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg",
          "hubble_deep_field.jpg", "grass.png", "gravel.png", "brick.png")  # scikit-image's bundled photographs


def photo_dir(given: Path | None) -> Path | None:
    """--photos, else the photographs scikit-image ships in its package (found without importing it)."""
    if given is not None:
        if not given.is_dir():
            raise SystemExit(f"--photos {given}: no such folder; give a folder of photographs (JPEG or PNG)")
        return given
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    return folder if folder and (folder / PHOTOS[0]).exists() else None


def photo_inputs(folder: Path, photos: Path, n_bg: int, n_fg: int) -> tuple[Path, Path]:
    """Backgrounds: R x R crops of the photographs; cut-outs: elliptical soft-edged crops of them (RGBA)."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in photos.iterdir() if p.name in PHOTOS) or sorted(
        p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [Image.open(p).convert("RGB") for p in files]
    bg_dir, fg_dir = folder / "bg", folder / "fg"
    bg_dir.mkdir(parents=True, exist_ok=True)
    fg_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        image = images[i % len(images)]
        side = min(image.size) * (1 - 0.1 * (i // len(images) % 4))
        left, top = (image.width - side) * 0.5, (image.height - side) * (0.2 * (i // len(images) % 5))
        crop = image.crop((round(left), round(top), round(left + side), round(top + side)))
        crop.resize((RESOLUTION, RESOLUTION), Image.Resampling.LANCZOS).save(bg_dir / f"bg_{i:03d}.jpg", quality=95)
    for i in range(n_fg):
        image = images[(i * 3 + 1) % len(images)]
        width, height = 150 + 10 * (i % 5), 170 - 10 * (i % 4)
        x0, y0 = (image.width - width) // 2, (image.height - height) // 3
        rgb = np.asarray(image.crop((x0, y0, x0 + width, y0 + height)))
        yy, xx = np.mgrid[:height, :width]
        inside = ((xx - width / 2) / (width * 0.45)) ** 2 + ((yy - height / 2) / (height * 0.45)) ** 2
        alpha = np.clip((1 - inside) * 600, 0, 255).astype(np.uint8)
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(fg_dir / f"fg_{i:03d}.png")
    return bg_dir, fg_dir


# ------------------------------------------------------------------------------ 5. CPU side of a rank

def standin_estimator():
    """builder.standin_depth's estimator where it exists; otherwise an equivalent local stand-in (a ramp plus
    the luminance): depth at almost no cost, so the figure is the CPU side of the depth path."""
    try:
        from builder.standin_depth import StandinDepthEstimator

        return StandinDepthEstimator()
    except ImportError:
        return LocalStandin()


class LocalStandin:
    revision, dtype = "standin", "float32"

    def __init__(self):
        import torch

        self.device = torch.device("cpu")

    def predict(self, images):
        import numpy as np

        from builder.depth import DepthBatch

        raw = images.astype(np.float32).mean(axis=3) / 255 * 0.3 + np.linspace(0.2, 1.0, images.shape[1])[:, None]
        low, high = raw.min(axis=(1, 2)), raw.max(axis=(1, 2))
        scaled = np.round((raw - low[:, None, None]) / (high - low)[:, None, None] * 65535)
        return DepthBatch(scaled.astype(np.uint16), low.astype(np.float32), high.astype(np.float32))


def standin_run(bg_dir: str, fg_dir: str, out: str, placements: int, shard_size: int, cores: int) -> dict:
    """The depth path in this process (one rank, `cores` worker processes) with the stand-in estimator."""
    from builder.launch import passive_openmp_waits

    passive_openmp_waits()
    import torch

    from builder.assets import load_inputs
    from builder.pipeline import Job, run_shards
    from builder.render import RenderContext
    from builder.settings import GenerateConfig
    from builder.shards import OutputStore

    torch.set_num_threads(cores)
    config = GenerateConfig.from_kwargs(bg_dir=bg_dir, fg_dir=fg_dir, output_dir=out, placements=placements,
                                        shard_size=shard_size, overwrite=True)
    job = Job(RenderContext(config.content, load_inputs(config.content, config.run)), standin_estimator(), 32)
    store = OutputStore(Path(out))
    store.prepare(job.manifest(), overwrite=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    tasks = run_shards(job, store, 0, 1, threads=cores)
    seconds = time.perf_counter() - started
    rows = sum(task.stop - task.start for task in tasks if task.config_name == "default")  # as run_generator counts
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "rows_per_s_per_core": rows / seconds / cores,
            "estimator": type(job.estimator).__module__ + "." + type(job.estimator).__name__,
            "main_process_cpu_s": time.process_time() - cpu_started}


def section_rank_cpu(work: Path, bg_dir: Path, fg_dir: Path, placements: int, repeats: int, cores: list[int],
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


# ------------------------------------------------------------------------------------------- 6. GPU

GPU_BATCHES = (32, 64, 128, 256)
GPU_COMPILED = {"bfloat16": (128, 256), "float16": (256,)}  # each compile costs ~1 min: the likely best ones
GPU_BUDGET_S = 420  # the section stops starting new measurements after this (the lead's limit: 8 minutes)


def attempt(record: dict, key: str, measure, deadline: float) -> None:
    """One sub-measurement: its result, or the error it raised, or why it was skipped, under `key`."""
    if time.monotonic() > deadline:
        record[key] = {"skipped": "time budget of the GPU section spent"}
        return
    try:
        record[key] = measure()
    except Exception as err:  # a benchmark on borrowed hardware records failures and goes on
        record[key] = {"error": f"{type(err).__name__}: {err}"[:2000]}
    print(f"  gpu {key}: {json.dumps(record[key])[:200]}", flush=True)


def gpu_maps_per_s(estimator, images, seconds: float = 3.0) -> dict:
    """DepthEstimator.predict_raw on CUDA (host uint8 batch in, depth at R on the device), after two warm-up
    batches; timed until `seconds` have passed; peak memory of the timed part."""
    import torch

    for _ in range(2):
        estimator.predict_raw(images)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        estimator.predict_raw(images)
        count += len(images)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {"maps_per_s": count / elapsed, "batches": count // len(images),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}


def gpu_estimator_sweep(model_dir: Path, deadline: float) -> dict:
    import numpy as np
    import torch

    from builder.depth import DepthEstimator
    from builder.feed import compile_estimator

    rng = np.random.default_rng(0)
    host = rng.integers(0, 256, (max(GPU_BATCHES), RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    result: dict = {}
    for dtype in ("bfloat16", "float16"):
        estimator = DepthEstimator.load(str(model_dir), 518, torch.device("cuda"), dtype)
        for batch in GPU_BATCHES:
            attempt(result, f"{dtype} batch {batch}", lambda e=estimator, b=batch: gpu_maps_per_s(e, host[:b]), deadline)
        compiled = compile_estimator(DepthEstimator.load(str(model_dir), 518, torch.device("cuda"), dtype))
        for batch in GPU_COMPILED[dtype]:
            attempt(result, f"{dtype} batch {batch} compiled", lambda c=compiled, b=batch: timed_compile(c, host[:b]),
                    deadline)
        del estimator, compiled
        torch.cuda.empty_cache()
    return result


def timed_compile(estimator, images) -> dict:
    started = time.perf_counter()
    estimator.predict_raw(images)  # compiles for this shape
    return {"compile_s": time.perf_counter() - started, **gpu_maps_per_s(estimator, images)}


def gpu_pipeline_per_image(model_dir: Path, count: int = 64) -> dict:
    """transformers' pipeline("depth-estimation") called once per image, bf16 on GPU 0, same model."""
    import torch
    from PIL import Image
    from transformers import pipeline

    pipe = pipeline("depth-estimation", model=str(model_dir), device=0, dtype=torch.bfloat16)
    images = [Image.fromarray(a) for a in depth_images(8)] * (count // 8)
    pipe(images[0])
    torch.cuda.synchronize()
    started = time.perf_counter()
    for image in images:
        pipe(image)
    torch.cuda.synchronize()
    return {"maps_per_s": len(images) / (time.perf_counter() - started), "images": len(images), "dtype": "bfloat16"}


class GpuPoller(Poller):
    """GPU utilisation (%) sampled every 0.5 s with nvidia-smi (torch.cuda.utilization needs pynvml)."""

    def __init__(self):
        super().__init__()
        self.samples: list[float] = []

    def _sample(self) -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout
            values = [float(v) for v in out.split()]
        except (OSError, ValueError, subprocess.TimeoutExpired):
            import torch

            try:
                values = [float(torch.cuda.utilization(i)) for i in range(torch.cuda.device_count())]
            except Exception:  # no pynvml either
                return None
        return sum(values) / len(values) if values else None

    def poll(self) -> None:
        if (value := self._sample()) is not None:
            self.samples.append(value)

    def summary(self) -> dict:
        busy = sorted(self.samples)
        return {"gpu_util_mean_pct": statistics.mean(busy) if busy else None,
                "gpu_util_median_pct": statistics.median(busy) if busy else None, "samples": len(busy)}


def gpu_end_to_end(work: Path, bg_dir: Path, fg_dir: Path, model_dir: Path, placements: int, processes: int) -> dict:
    """scripts/generate.py at 518 with the V2-Small-architecture model: one rank per GPU (torchrun for several)."""
    out = work / f"gpu-e2e-{processes}"
    args = ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--placements", str(placements), "--depth-model",
            str(model_dir), "--shard-size", "2000"]
    with GpuPoller() as poller:
        run = run_generator(args, out, processes=processes)
    return {"rows": run["rows"], "rows_per_s": run["rows"] / run["seconds"], "seconds": run["seconds"],
            "wall_s": run["wall_s"], "processes": run["processes"], "peak_rss_mb": run["peak_rss_mb"],
            **poller.summary()}


def section_gpu(work: Path, inputs, placements: int) -> dict:
    """Only on CUDA. Sizes are chosen to finish within ~7 minutes on one H100: 8 estimator settings timed for 3 s
    each, 3 compiles, 64 pipeline calls, two end-to-end runs of 10 x 10 x 2 x `placements` rows."""
    import torch

    if not torch.cuda.is_available():
        return {"note": "no CUDA device: GPU section skipped"}
    from builder.random_model import save_random_depth_model

    deadline = time.monotonic() + GPU_BUDGET_S
    bg_dir, fg_dir = inputs()
    model_dir = work / "model-v2-small"
    if not model_dir.exists():
        in_child(save_random_depth_model, str(model_dir), "v2-small")
    gpus = torch.cuda.device_count()
    result: dict = {"device": torch.cuda.get_device_name(0), "gpus": gpus, "model": "random-weight v2-small",
                    "input_size": 518, "resolution": RESOLUTION}
    attempt(result, "estimator", lambda: in_child(gpu_estimator_sweep, model_dir, deadline), deadline)
    attempt(result, "pipeline_per_image", lambda: in_child(gpu_pipeline_per_image, model_dir), deadline)
    attempt(result, "e2e_1_gpu", lambda: gpu_end_to_end(work, bg_dir, fg_dir, model_dir, placements, 1),
            deadline + 60)
    if gpus > 1:
        attempt(result, f"e2e_{gpus}_gpus", lambda: gpu_end_to_end(work, bg_dir, fg_dir, model_dir, placements, gpus),
                deadline + 120)
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
    lines += rank_lines(report.get("rank")) + gpu_lines(report.get("gpu"))
    m = report.get("memory")
    if m:
        lines.append(f"| peak RSS no-depth, {m['1x']['shards']} vs {m['4x']['shards']} shards (MB) | "
                     f"{m['1x']['peak_rss_mb']} vs {m['4x']['peak_rss_mb']} | | growth {m['growth_mb']} MB |")
    return "\n".join(lines)


def photo_section_inputs(work: Path, given: Path | None, report: dict) -> tuple[Path, Path]:
    """10 x 10 inputs from photographs (recorded in the report); the procedural demo inputs if none are found."""
    photos = photo_dir(given)
    if photos is None:
        report["inputs"]["photos"] = "none found (pass --photos or pip install scikit-image): procedural demo inputs"
        return make_inputs(work / "demo10", 10, 10)
    report["inputs"]["photos"] = f"{photos}: 10 backgrounds and 10 cut-outs cropped from {', '.join(PHOTOS)}"
    return photo_inputs(work / "photos10", photos, 10, 10)


def rank_lines(r: dict | None) -> list[str]:
    if not r:
        return []
    lines = []
    for path, label in (("nodepth", "--no-depth"), ("depth_standin", "depth path, stand-in depth")):
        one, full = r["variants"]
        lines.append(f"| one rank, {label}, {full} vs {one} (rows/s) | {r[path][full]['rows_per_s']:.0f} | "
                     f"{r[path][one]['rows_per_s']:.0f} | {r[path]['speedup_all_cores']:.2f}x "
                     f"({r[path]['cpu_ms_per_row_1core']:.2f} ms per row on 1 core) |")
    lines.append(f"| 400,000 rows --no-depth, one rank on all cores (minutes) | "
                 f"{r['projected_400k_nodepth_minutes_all_cores']:.1f} | | |")
    return lines


def gpu_lines(g: dict | None) -> list[str]:
    if not g or "note" in g:
        return [f"| GPU | {g['note']} | | |"] if g else []
    lines = []
    for key, value in g.get("estimator", {}).items():
        if "maps_per_s" in value:
            lines.append(f"| estimator {key} @ 518 on {g['device']} (maps/s) | {value['maps_per_s']:.0f} | | "
                         f"peak {value['peak_memory_gib']:.1f} GiB |")
    for key in [k for k in g if k.startswith("e2e") or k == "pipeline_per_image"]:
        value = g[key]
        rate = value.get("rows_per_s", value.get("maps_per_s"))
        if rate is not None:
            lines.append(f"| {key} (rows or maps/s) | {rate:.0f} | | GPU util {value.get('gpu_util_mean_pct')} % |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("benchmark.json"), help="where the JSON report goes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3; 1 with --quick)")
    parser.add_argument("--sections", default="composite,depth,e2e,memory,rank,gpu",
                        help="comma-separated subset of composite,depth,e2e,memory,rank,gpu")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of photographs for the rank and gpu sections (default: scikit-image's)")
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
        if "rank" in sections:
            report["rank"] = section_rank_cpu(work, *photo_section_inputs(work, args.photos, report), k, repeats,
                                              cores, shard_size)
        if "gpu" in sections:
            report["gpu"] = section_gpu(work, lambda: photo_section_inputs(work, args.photos, report),
                                        2 if args.quick else 40)
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
