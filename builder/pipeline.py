"""The work of a generation, with no knowledge of launchers: a `Job` renders the rows of a shard batch by batch
(CPU work for the next batch overlaps depth on this one), and `run_shards` writes one rank's shards."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from builder.assets import load_inputs
from builder.configs import CONFIG_BY_NAME, CONFIGS, DatasetConfig
from builder.depth import DepthEstimator, NonFiniteDepthError
from builder.encode import depth_levels, encode_depth, image_cell
from builder.errors import FgbgError, UsageError
from builder.plan import ShardTask, shard_tasks, tasks_for_process
from builder.render import RenderContext
from builder.settings import ContentSettings, GenerateConfig, Manifest, ModelRecord, library_versions
from builder.shards import OutputStore
from builder.stats import ImageStats, StatsBook, merge_all


def _pieces(items, workers: int) -> list:
    """`items` cut into at most `workers` contiguous slices: one task per worker thread, not one per row."""
    step = -(-len(items) // workers)
    return [items[s:s + step] for s in range(0, len(items), step)]


def _render_rows(config: DatasetConfig, ctx: RenderContext, indices: list[int]
                 ) -> tuple[list[dict], StatsBook, list]:
    """Rows of the given keys, their statistics summed here in the worker."""
    stats, rows, images = StatsBook(config.schema.peaks), [], []
    for index in indices:
        row, image = config.render_row(ctx, index, stats)
        rows.append(row)
        images.append(image)
    return rows, stats, images


@dataclasses.dataclass
class Job:
    """Everything a row is a function of (the content settings, the decoded inputs, the depth model), and how
    many rows go through the model at once."""

    ctx: RenderContext
    estimator: DepthEstimator | None
    batch_size: int

    @property
    def settings(self) -> ContentSettings:
        return self.ctx.settings

    def tasks(self) -> list[ShardTask]:
        """Every shard of every config and split; a shard holds a contiguous range of its split's rows."""
        plan = self.ctx.plan
        size = self.settings.shard_size
        return [task for config in CONFIGS for split in plan.splits
                for task in shard_tasks(config.name, config.count_rows(plan, split), size, split)]

    def schema(self, config_name: str) -> pa.Schema:
        settings = self.settings
        return CONFIG_BY_NAME[config_name].schema.features(settings.with_depth, settings.with_augment).arrow_schema

    def manifest(self) -> Manifest:
        model = (ModelRecord(self.settings.depth_model, self.estimator.revision,
                             str(self.estimator.dtype).removeprefix("torch.")) if self.estimator else None)
        inputs, plan = self.ctx.inputs, self.ctx.plan
        held = ({"backgrounds": [inputs.bg_files[i].name for i in sorted(plan.held_bg)],
                 "foregrounds": [inputs.fg_files[i].name for i in sorted(plan.held_fg)]}
                if len(plan.splits) > 1 else None)
        return Manifest(self.settings, tuple(inputs.records(inputs.bg_files)), tuple(inputs.records(inputs.fg_files)),
                        model, library_versions(), held_out=held)

    def render(self, task: ShardTask, pool: Executor, workers: int = 1
               ) -> Iterator[tuple[pa.RecordBatch, dict[str, ImageStats]]]:
        """Record batches of one shard with their statistics by kind; the next batch renders in `pool` while
        depth runs on this one."""
        config = CONFIG_BY_NAME[task.config_name]
        size, schema = self.batch_size, self.schema(task.config_name)
        keys = config.keys(self.ctx.plan, task.name.split)
        batches = [[keys[p] for p in range(s, min(s + size, task.stop))] for s in range(task.start, task.stop, size)]

        def submit(batch: list[int]) -> list:
            return [pool.submit(_render_rows, config, self.ctx, piece) for piece in _pieces(batch, workers)]

        pending = submit(batches[0]) if batches else []
        for n in range(len(batches)):
            pieces = [future.result() for future in pending]
            pending = submit(batches[n + 1]) if n + 1 < len(batches) else []
            rows = [row for piece_rows, _, _ in pieces for row in piece_rows]
            stats = merge_all([piece_stats for _, piece_stats, _ in pieces])
            depth_inputs = [image for _, _, images in pieces for image in images if image is not None]
            if self.estimator is not None and depth_inputs:
                stats = merge_all([stats, self._add_depth(config, rows, np.stack(depth_inputs), pool, workers)])
            yield pa.RecordBatch.from_pylist(rows, schema=schema), config.schema.by_kind(stats)

    def _add_depth(self, config: DatasetConfig, rows: list[dict], images: np.ndarray, pool: Executor,
                   workers: int) -> StatsBook:
        try:
            prediction = self.estimator.predict(images)
        except NonFiniteDepthError as err:
            keys = [rows[p][config.key_column] for p in err.positions]
            raise FgbgError(f"config {config.name}, {config.key_column} {keys}: {err}") from err

        bits = self.settings.depth_bits

        def encode(depths: np.ndarray) -> tuple[list[bytes], StatsBook]:
            stats, encoded = StatsBook(config.schema.for_depth_bits(bits).peaks), []
            for depth in depths:
                levels = depth_levels(depth, bits)
                encoded.append(encode_depth(levels))
                stats["depth"].add(levels, len(encoded[-1]))
            return encoded, stats

        pieces = list(pool.map(encode, _pieces(prediction.depth, workers)))
        encoded = [data for piece, _ in pieces for data in piece]
        for row, data, low, high in zip(rows, encoded, prediction.depth_min, prediction.depth_max):
            row.update(depth=image_cell(data), depth_min=float(low), depth_max=float(high))
        return merge_all([stats for _, stats in pieces])


def load_job(config: GenerateConfig, device, log: Callable[[str], None] = print) -> Job:
    """Validate inputs (all problems at once), then load the model: both before anything is written."""
    inputs = load_inputs(config.content, config.run)
    for note in inputs.warnings:
        log(f"warning: {note}")
    if problems := config.content.split_problems(len(inputs.backgrounds), len(inputs.foregrounds)):
        raise UsageError(problems)
    estimator = None
    content = config.content
    if content.with_depth:
        estimator = DepthEstimator.load(content.depth_model, content.depth_input_size, device, content.depth_dtype)
    return Job(RenderContext(content, inputs), estimator, config.run.batch_size)


def run_shards(job: Job, store: OutputStore, rank: int, world_size: int, threads: int = 1,
               on_rows: Callable[[int], None] = lambda n: None, on_shard: Callable[[], None] = lambda: None
               ) -> list[ShardTask]:
    """Write this rank's unfinished shards (round-robin over every config's shards); returns every task."""
    tasks = job.tasks()
    mine = [t for t in tasks_for_process(tasks, rank, world_size) if not store.is_done(t)]
    with ThreadPoolExecutor(threads) as pool:
        for task in mine:
            store.write_shard(task, job.schema(task.config_name), job.render(task, pool, threads), on_rows=on_rows)
            on_shard()
    return tasks


def iter_rows(config: GenerateConfig, tasks: list[ShardTask], device, threads: int) -> Iterator[dict]:
    """Rows of the given shard tasks in this process (used by fgbg_depth.FgBgDepth)."""
    job = load_job(config, device)
    with ThreadPoolExecutor(threads) as pool:
        for task in tasks:
            for batch, _ in job.render(task, pool, threads):
                yield from batch.to_pylist()
