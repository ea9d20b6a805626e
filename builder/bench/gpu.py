"""Section gpu, only on CUDA (otherwise it says so and the run goes on): estimator maps/s at 518 for batch sizes
32-256 in bf16 and fp16, compiled and not; pipeline("depth-estimation") per image; end-to-end rows/s on 1 GPU
and on all GPUs (torchrun); GPU utilisation and peak memory. Bounded by a time budget (default ~8 minutes)."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from builder.bench.common import RESOLUTION, Poller, in_child, run_generator
from builder.bench.inputs import depth_images

GPU_BATCHES = (32, 64, 128, 256)
GPU_COMPILED = {"bfloat16": (128, 256), "float16": (256,)}  # each compile costs ~1 min: the likely best ones
GPU_BUDGET_S = 420  # by default the section stops starting new measurements after this (the lead's limit: 8 minutes)


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

    from builder.run.depth import DepthEstimator
    from builder.run.feed import compile_estimator

    rng = np.random.default_rng(0)
    host = rng.integers(0, 256, (max(GPU_BATCHES), RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    result: dict = {}
    for dtype in ("bfloat16", "float16"):
        estimator = DepthEstimator.load(str(model_dir), 518, torch.device("cuda"), dtype)
        for batch in GPU_BATCHES:
            attempt(result, f"{dtype} batch {batch}", lambda e=estimator, b=batch: gpu_maps_per_s(e, host[:b]),
                    deadline)
        compiled = compile_estimator(DepthEstimator.load(str(model_dir), 518, torch.device("cuda"), dtype))
        for batch in GPU_COMPILED[dtype]:
            attempt(result, f"{dtype} batch {batch} compiled", lambda c=compiled, b=batch: timed_compile(c, host[:b]),
                    deadline)
        del estimator, compiled
        torch.cuda.empty_cache()
    return result


def timed_compile(estimator, images) -> dict:
    """`compiled` is false when torch.compile was refused and the plain model ran
    (builder.run.feed.compile_estimator)."""
    started = time.perf_counter()
    estimator.predict_raw(images)  # compiles for this shape
    compiled = getattr(estimator.model, "fast", None) is not None
    return {"compile_s": time.perf_counter() - started, "compiled": compiled, **gpu_maps_per_s(estimator, images)}


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


def run(work: Path, inputs, placements: int, budget_s: float = GPU_BUDGET_S) -> dict:
    """Only on CUDA. Sizes are chosen to finish within ~7 minutes on one H100: 8 estimator settings timed for 3 s
    each, 3 compiles, 64 pipeline calls, two end-to-end runs of 10 x 10 x 2 x `placements` rows."""
    import torch

    if not torch.cuda.is_available():
        return {"note": "no CUDA device: GPU section skipped"}
    from builder.testing.random_model import save_random_depth_model

    deadline = time.monotonic() + budget_s
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


def lines(g: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not g or "note" in g:
        return [f"| GPU | {g['note']} | | |"] if g else []
    rows = []
    for key, value in g.get("estimator", {}).items():
        if "maps_per_s" in value:
            refused = " (compile refused: the plain model ran)" if value.get("compiled") is False else ""
            rows.append(f"| estimator {key}{refused} @ 518 on {g['device']} (maps/s) | {value['maps_per_s']:.0f} | | "
                        f"peak {value['peak_memory_gib']:.1f} GiB |")
    for key in [k for k in g if k.startswith("e2e") or k == "pipeline_per_image"]:
        value = g[key]
        rate = value.get("rows_per_s", value.get("maps_per_s"))
        if rate is not None:
            rows.append(f"| {key} (rows or maps/s) | {rate:.0f} | | GPU util {value.get('gpu_util_mean_pct')} % |")
    return rows
