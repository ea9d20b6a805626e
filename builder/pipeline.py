"""One generation: render rows of each config shard by shard, in every accelerate process, then finish
on the main process (statistics, sample grids, card)."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from builder import card
from builder.assets import Inputs, load_inputs
from builder.cluster import check_shared_output, mark_run
from builder.composite import ForegroundCache, composite, mask_bbox, placed_mask
from builder.config import GenerateConfig
from builder.depth import DepthEstimator
from builder.encode import decode, decode_image, encode_jpeg, encode_png, encode_png16, image_cell
from builder.plan import SampleSpace, ShardTask, draw_placement, shard_tasks, tasks_for_process
from builder.progress import JobProgress
from builder.shards import OutputStore
from builder.stats import ImageStats, StatsBook, binary_mask_moments, merge_all, moments_from_histogram
from fgbg_depth import CONFIG_NAMES, features


def _pieces(items, workers: int) -> list:
    """`items` cut into at most `workers` contiguous slices: one task per worker thread, not one per row."""
    step = -(-len(items) // workers)
    return [items[s:s + step] for s in range(0, len(items), step)]


@dataclasses.dataclass
class Job:
    """Everything a row is a function of: the config, the decoded inputs and the depth model."""

    config: GenerateConfig
    inputs: Inputs
    estimator: DepthEstimator | None

    @property
    def space(self) -> SampleSpace:
        return SampleSpace(len(self.inputs.backgrounds), len(self.inputs.foregrounds), self.config.placements)

    @functools.cached_property
    def foreground_cache(self) -> ForegroundCache:
        """Foregrounds premultiplied once per flip, and resized once per size (bounded memory)."""
        return ForegroundCache(self.inputs.foregrounds)

    def tasks(self) -> list[ShardTask]:
        return [task for name in CONFIG_NAMES
                for task in shard_tasks(name, self.space.config_rows(name), self.config.shard_size)]

    def schema(self, config_name: str) -> pa.Schema:
        return features(config_name, self.config.with_depth).arrow_schema

    def manifest(self) -> dict:
        model = ({"id": self.config.depth_model, "revision": self.estimator.revision,
                  "dtype": str(self.estimator.dtype).removeprefix("torch.")} if self.estimator else None)
        return {"format": 1, "settings": self.config.content_settings(), "inputs": self.inputs.manifest(),
                "model": model, "versions": card.library_versions()}

    def render(self, task: ShardTask, pool: Executor, workers: int = 1
               ) -> Iterator[tuple[pa.RecordBatch, dict[str, ImageStats]]]:
        """Record batches of one shard; CPU work for the next batch runs in `pool` while depth runs on this one."""
        size = self.config.batch_size
        render_row = {"default": self._sample_row, "backgrounds": self._background_row,
                      "foregrounds": self._foreground_row}[task.config_name]
        schema = self.schema(task.config_name)
        batches = [range(s, min(s + size, task.stop)) for s in range(task.start, task.stop, size)]

        def submit(batch: range) -> list:
            return [pool.submit(self._render_rows, render_row, piece) for piece in _pieces(batch, workers)]

        pending = submit(batches[0]) if batches else []
        for n in range(len(batches)):
            pieces = [future.result() for future in pending]
            pending = submit(batches[n + 1]) if n + 1 < len(batches) else []
            rows = [row for piece_rows, _, _ in pieces for row in piece_rows]
            stats = merge_all([piece_stats for _, piece_stats, _ in pieces])
            depth_inputs = [image for _, _, images in pieces for image in images if image is not None]
            if self.estimator is not None and depth_inputs:
                kind = "depth" if task.config_name == "default" else "bg_depth"
                stats = merge_all([stats, self._add_depth(rows, np.stack(depth_inputs), kind, pool, workers)])
            yield pa.RecordBatch.from_pylist(rows, schema=schema), stats

    @staticmethod
    def _render_rows(render_row, indices: range) -> tuple[list[dict], StatsBook, list]:
        """Rows of contiguous indices, their statistics summed here in the worker."""
        stats, rows, images = StatsBook(), [], []
        for index in indices:
            row, image = render_row(index, stats)
            rows.append(row)
            images.append(image)
        return rows, stats, images

    def _add_depth(self, rows: list[dict], images: np.ndarray, kind: str, pool: Executor, workers: int) -> StatsBook:
        prediction = self.estimator.predict(images)

        def encode(depths: np.ndarray) -> tuple[list[bytes], StatsBook]:
            stats, encoded = StatsBook(), []
            for depth in depths:
                encoded.append(encode_png16(depth))
                stats[kind].add(depth, len(encoded[-1]))
            return encoded, stats

        pieces = list(pool.map(encode, _pieces(prediction.depth, workers)))
        encoded = [data for piece, _ in pieces for data in piece]
        for row, data, low, high in zip(rows, encoded, prediction.depth_min, prediction.depth_max):
            row.update(depth=image_cell(data), depth_min=float(low), depth_max=float(high))
        return merge_all([stats for _, stats in pieces])

    def _sample_row(self, index: int, stats: StatsBook) -> tuple[dict, np.ndarray | None]:
        config = self.config
        bg_id, fg_id, flip, _ = self.space.decompose(index)
        foreground = self.inputs.foregrounds[fg_id]
        placement = draw_placement(config.seed, index, *foreground.shape[:2], config.resolution,
                                   config.scale_min, config.scale_max)
        placed = self.foreground_cache.placed(fg_id, flip, placement)
        mask = placed_mask(placed, placement, config.resolution, config.mask_threshold)
        jpeg = encode_jpeg(composite(self.inputs.backgrounds[bg_id], placed, placement), config.jpeg_quality)
        stored = decode_image(jpeg)  # depth and statistics see the composite exactly as users will
        png = encode_png(mask)
        row = {"fg_bg": image_cell(jpeg), "mask": image_cell(png), "sample_id": index, "bg_id": bg_id,
               "fg_id": fg_id, "flip": bool(flip), "x": placement.x, "y": placement.y, "scale": placement.scale,
               "bbox": mask_bbox(mask)}
        pixels = config.resolution * config.resolution
        stats["fg_bg"].add_moments(*moments_from_histogram(stored.histogram(), 3), pixels, len(jpeg))
        stats["mask"].add_moments(*binary_mask_moments(mask), pixels, len(png))
        return row, (np.asarray(stored) if self.estimator is not None else None)

    def _background_row(self, bg_id: int, stats: StatsBook) -> tuple[dict, np.ndarray]:
        jpeg = encode_jpeg(self.inputs.backgrounds[bg_id], self.config.jpeg_quality)
        stored = decode(jpeg)
        stats["bg"].add(stored, len(jpeg))
        return {"bg_id": bg_id, "image": image_cell(jpeg), "source": self.inputs.bg_files[bg_id].name}, stored

    def _foreground_row(self, fg_id: int, stats: StatsBook) -> tuple[dict, None]:
        rgba = self.inputs.foregrounds[fg_id]
        mask = np.where(rgba[..., 3] >= self.config.mask_threshold, 255, 0).astype(np.uint8)
        image, mask_png = encode_png(rgba), encode_png(mask)
        stats["fg"].add(rgba, len(image))
        stats["fg_mask"].add(mask, len(mask_png))
        return {"fg_id": fg_id, "image": image_cell(image), "mask": image_cell(mask_png),
                "source": self.inputs.fg_files[fg_id].name}, None


def cpu_threads(num_local_processes: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, num_local_processes))


def load_job(config: GenerateConfig, device, log=print) -> Job:
    """Validate inputs (all problems at once), then load the model: both before anything is written."""
    inputs = load_inputs(config)
    for note in inputs.warnings:
        log(f"warning: {note}")
    estimator = None
    if config.with_depth:
        estimator = DepthEstimator.load(config.depth_model, config.depth_input_size, device, config.depth_dtype)
    return Job(config, inputs, estimator)


def iter_rows(config: GenerateConfig, config_name: str) -> Iterator[dict]:
    """Rows of one config in one process (used by fgbg_depth.FgBgDepth)."""
    import torch

    job = load_job(config, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    threads = cpu_threads(1)
    with ThreadPoolExecutor(threads) as pool:
        for task in shard_tasks(config_name, job.space.config_rows(config_name), config.shard_size):
            for batch, _ in job.render(task, pool, threads):
                yield from batch.to_pylist()


def run(config: GenerateConfig) -> dict | None:
    """The whole generation in this process; returns the summary on the main process."""
    import torch
    from accelerate import PartialState

    from builder.launch import use_cpu

    started = time.monotonic()
    state = PartialState(cpu=use_cpu())
    log = (lambda message: print(message, file=sys.stderr, flush=True)) if state.is_main_process else (lambda m: None)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))
    threads = cpu_threads(local_processes)
    if state.device.type == "cpu":
        torch.set_num_threads(threads)
    job = load_job(config, state.device, log)
    store = OutputStore(config.output_dir)
    manifest = job.manifest()
    if state.is_main_process:
        store.prepare(manifest, config.overwrite)
        mark_run(store)
    state.wait_for_everyone()
    check_shared_output(store, manifest, state.process_index, state.num_processes)

    tasks = job.tasks()
    mine = [t for t in tasks_for_process(tasks, state.process_index, state.num_processes) if not store.is_done(t)]
    progress = JobProgress(store, tasks, enabled=state.is_main_process)
    with ThreadPoolExecutor(threads) as pool:
        for task in mine:
            store.write_shard(task, job.schema(task.config_name), job.render(task, pool, threads),
                              on_rows=progress.advance)
            progress.shard_done()
    if not state.is_main_process:
        return None
    progress.wait_for_all()
    summary = card.finish(store, job, tasks, elapsed=time.monotonic() - started, resumed_rows=progress.resumed_rows,
                          processes=state.num_processes, device=str(state.device))
    log(card.summary_text(summary))
    return summary
