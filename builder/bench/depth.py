"""Section depth: our batched DepthEstimator against transformers' pipeline("depth-estimation") called once per
image, same model (Depth-Anything-V2-Small architecture at random weights), same images, in one process."""

from __future__ import annotations

import time
from pathlib import Path

from builder.bench.common import in_child, median, peak_rss_mb
from builder.bench.inputs import depth_images


def depth_compare(model_dir: str, input_size: int, count: int, repeats: int, threads: int) -> dict:
    """Both in this process, after the generator's own process set-up (its OpenMP and allocator settings, made
    before torch is imported, as generate.py makes them), so they apply to the pipeline as well."""
    from builder.run.launch import passive_openmp_waits, retain_freed_memory

    passive_openmp_waits()
    retain_freed_memory()
    import numpy as np
    import torch
    from PIL import Image
    from transformers import pipeline

    from builder.run.depth import DepthEstimator

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


def run(work: Path, sizes: list[int], count: int, repeats: int, architecture: str, cores: list[int]) -> dict:
    from builder.testing.random_model import save_random_depth_model

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


def lines(d: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not d:
        return []
    rows = []
    for size in [k for k in d if k.isdigit()]:
        r = d[size]
        rows.append(f"| depth {d['model']} @ {size}, CPU (maps/s) | {r['ours_maps_per_s']:.2f} | "
                     f"{r['pipeline_maps_per_s']:.2f} | {r['ratio']:.2f}x (max diff {r['max_abs_diff_over_range']:.1e}"
                     f" of range; peak RSS {r['peak_rss_mb']:.0f} MB, both in one process) |")
    return rows
