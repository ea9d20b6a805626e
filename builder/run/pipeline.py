"""The work of a generation, with no knowledge of launchers: a `Job` renders the rows of a shard batch by batch
(the rank's worker processes render batch n+1 and encode batch n-1's depth while the model runs on batch n; see
builder/run/workers.py and builder/run/feed.py), and `run_shards` writes one rank's shards."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.errors import FgbgError, UsageError
from builder.contract.plan import ShardTask, SplitPlan, tasks_for_process
from builder.contract.schema import BACKGROUNDS
from builder.contract.settings import (FOCAL_FIX, ContentSettings, GenerateConfig, Manifest, ModelRecord, column_groups,
                                       from_coco, library_versions)
from builder.rows.assets import load_inputs
from builder.rows.bg_depth import attach_bg_depths
from builder.rows.configs import CONFIG_BY_NAME, CONFIGS, DatasetConfig, dataset_tasks
from builder.rows.render import RenderContext
from builder.rows.stats import ImageStats, merge_all
from builder.run.depth import DepthEstimator, NonFiniteDepthError
from builder.run.feed import DepthFeed, compile_estimator, resolve_batch_size
from builder.run.stored_depth import RowDepth, ShardDepth, depth_columns
from builder.run.workers import DEPTH_SLOTS, IMAGE_SLOTS, WorkerPool
from builder.store.output import OutputStore
from builder.store.shards import ShardStore
from builder.store.storage import open_folder


@dataclasses.dataclass
class Job:
    """Everything a row is a function of (the content settings, the decoded inputs, the depth model), and how
    many rows go through the model at once."""

    ctx: RenderContext
    estimator: DepthEstimator | None
    batch_size: int
    workers: int | None = None  # worker processes; None: the rank's share of the cores; 0: in this process
    compiled: bool = False  # the model was compiled for one batch shape: every batch is padded to batch_size

    @property
    def settings(self) -> ContentSettings:
        return self.ctx.settings

    def tasks(self) -> list[ShardTask]:
        """Every shard of every config and split (see `dataset_tasks`)."""
        return dataset_tasks(self.ctx.plan, self.settings.shard_size)

    @property
    def needs_stored_bg_depth(self) -> bool:
        """Ground placement by stored depth (the --bg-depth-dir maps', else the model's): it reads the backgrounds'
        depth as stored, so every process, and verify, derive the same placements from the same numbers (the model's
        in-memory floats could differ between devices and batch sizes). Only the demo's maps are placed by as they
        are."""
        return self.settings.with_ground and self.ctx.inputs.bg_depths is None and self.ctx.stored_bg_depth is None

    @property
    def field_of_view(self) -> bool:
        """The depth model predicts its field of view: `backgrounds` stores each one's focal length."""
        return self.estimator is not None and self.estimator.field_of_view

    def with_stored_bg_depth(self, depth: ShardDepth | RowDepth) -> "Job":
        """The job with the backgrounds' disparity read back from their stored depth (`ShardDepth`, `RowDepth`),
        for ground mode, and with a model that predicts its field of view their stored focal lengths."""
        focal = depth.focal if self.field_of_view else None
        return dataclasses.replace(self, ctx=dataclasses.replace(self.ctx, stored_bg_depth=depth,
                                                                 stored_bg_focal=focal))

    def schema(self, config_name: str) -> pa.Schema:
        inputs = self.ctx.inputs
        groups = column_groups(self.settings, inputs.with_categories, from_coco(inputs.source),
                               inputs.stores_given_depth, self.field_of_view)
        return CONFIG_BY_NAME[config_name].schema.features(**groups).arrow_schema

    def manifest(self) -> Manifest:
        model = (ModelRecord(self.settings.depth_model, self.estimator.revision,
                             str(self.estimator.dtype).removeprefix("torch."), self.field_of_view)
                 if self.estimator else None)
        inputs, plan = self.ctx.inputs, self.ctx.plan
        held = ({"backgrounds": [inputs.bg_files[i].name for i in sorted(plan.held_bg)],
                 "foregrounds": [inputs.cutouts[i].name for i in sorted(plan.held_fg)]}
                if len(plan.splits) > 1 else None)
        depths = tuple(f.record() for f in inputs.bg_depth_files) if inputs.bg_depth_files is not None else None
        if inputs.stores_given_depth:
            depths = tuple(dataclasses.replace(record, stored_sha256=sha256)
                           for record, sha256 in zip(depths, inputs.given_depth_sha256))
        return Manifest(self.settings, tuple(f.record() for f in inputs.bg_files),
                        tuple(cutout.record() for cutout in inputs.cutouts), model, library_versions(), held_out=held,
                        bg_depths=depths, source=inputs.source, physical=inputs.physical)

    def render(self, task: ShardTask, pool: WorkerPool, feed: DepthFeed | None = None
               ) -> Iterator[tuple[pa.RecordBatch, dict[str, ImageStats]]]:
        """Record batches of one shard with their statistics by kind. Workers render batch n+1 while the model
        runs on batch n, and encode batch n-1's depth maps meanwhile."""
        config = CONFIG_BY_NAME[task.config_name]
        size, schema = self.batch_size, self.schema(task.config_name)
        keys = config.keys(self.ctx.plan, task.name.split)
        batches = [[keys[p] for p in range(s, min(s + size, task.stop))] for s in range(task.start, task.stop, size)]
        pending = pool.render(config.name, batches[0], 0) if batches else []
        previous = None  # the batch whose depth is on its way back, with its depth slot
        for n in range(len(batches)):
            rows, stats, count = _collect(pending)
            if n + 1 < len(batches):
                pending = pool.render(config.name, batches[n + 1], (n + 1) % IMAGE_SLOTS)
            if feed is not None and count:
                feed.start(n % IMAGE_SLOTS, n % DEPTH_SLOTS, count)
            if previous is not None:
                yield _with_depth(config, schema, pool, feed, *previous)
            previous = (rows, stats, n % DEPTH_SLOTS) if feed is not None and count else None
            if previous is None:
                yield pa.RecordBatch.from_pylist(rows, schema=schema), config.schema.by_kind(stats)
        if previous is not None:
            yield _with_depth(config, schema, pool, feed, *previous)


def _collect(futures: list) -> tuple[list[dict], dict, int]:
    """One batch's rows, statistics and number of model inputs, from its pieces in order."""
    pieces = [future.result() for future in futures]
    rows = [row for piece_rows, _, _ in pieces for row in piece_rows]
    return rows, merge_all([stats for _, stats, _ in pieces]), sum(count for _, _, count in pieces)


def _with_depth(config: DatasetConfig, schema: pa.Schema, pool: WorkerPool, feed: DepthFeed, rows: list[dict],
                stats: dict, depth_slot: int) -> tuple[pa.RecordBatch, dict[str, ImageStats]]:
    """The batch with its depth columns, once its maps are back in the depth ring and the workers encoded them.
    A non-finite prediction is an error naming its rows, never written."""
    try:
        lows, highs, focals = feed.finish()
    except NonFiniteDepthError as err:
        keys = [rows[p][config.key_column] for p in err.positions]
        raise FgbgError(f"config {config.name}, {config.key_column} {keys}: {err}") from err
    pieces = [future.result() for future in pool.encode_depth(config.name, depth_slot, len(lows))]
    cells = [cell for piece_cells, _ in pieces for cell in piece_cells]
    for row, cell, low, high in zip(rows, cells, lows, highs):
        row.update(depth=cell, depth_min=float(low), depth_max=float(high))
    if FOCAL_COLUMN in schema.names:  # the backgrounds of a model that predicts its field of view
        for row, focal in zip(rows, focals):
            row[FOCAL_COLUMN] = float(focal)
    stats = merge_all([stats, merge_all([piece_stats for _, piece_stats in pieces])])
    return pa.RecordBatch.from_pylist(rows, schema=schema), config.schema.by_kind(stats)


def load_job(config: GenerateConfig, device, log: Callable[[str], None] = print) -> Job:
    """Validate inputs (all problems at once), then load the model: both before anything is written."""
    inputs = attach_bg_depths(load_inputs(config.content, config.run), config.content, config.run)
    for note in inputs.warnings:
        log(f"warning: {note}")
    if problems := config.content.split_problems(len(inputs.bg_files), len(inputs.cutouts)):
        raise UsageError(problems)
    estimator = None
    content, run = config.content, config.run
    batch_size = resolve_batch_size(run.batch_size, device)
    if content.with_depth:
        estimator = DepthEstimator.load(content.depth_model, content.depth_input_size, device, content.depth_dtype,
                                        content.resolution, content.depth_kind)
        # the model's own input size and output kind, decided from its config: recorded in the manifest
        content = dataclasses.replace(content, depth_input_size=estimator.input_size, depth_kind=estimator.kind.name)
        if content.placement_mode == "physical":
            _check_physical_model(content, inputs.bg_depth_files is None, estimator)
        if run.compile:
            estimator = compile_estimator(estimator)
    workers = None if run.workers == "auto" else int(run.workers)
    return Job(RenderContext(content, inputs), estimator, batch_size, workers, compiled=run.compile)


def _check_physical_model(content: ContentSettings, placed_by_model: bool, estimator: DepthEstimator) -> None:
    """--placement-mode physical by the model's depth needs a metric model, and without --focal-px one that predicts
    its field of view: UsageError (exit 2) naming both, before anything is written."""
    problems = []
    if placed_by_model and not estimator.kind.metric:
        problems.append(f"--placement-mode physical needs metric depth, and {content.depth_model} outputs "
                        f"{estimator.kind.label} depth: use a metric depth model, or --bg-depth-dir DIR with "
                        "--bg-depth-kind depth (maps in metres)")
    if content.focal_px is None and not estimator.field_of_view:
        problems.append(f"--placement-mode physical needs the focal length of the original background images, and "
                        f"{content.depth_model} predicts no field of view: {FOCAL_FIX}")
    if problems:
        raise UsageError(problems)


@contextlib.contextmanager
def open_workers(job: Job, workers: int) -> Iterator[tuple[WorkerPool, DepthFeed | None]]:
    """The rank's worker pool and depth feed, closed in that order (the feed unpins the pool's rings) however
    the run ends."""
    bits = job.settings.depth_bits
    recipes = {config.name: (config.render_row, config.schema.for_depth_bits(bits).peaks) for config in CONFIGS}
    with WorkerPool(job.ctx, recipes, workers, job.batch_size) as pool:
        if job.estimator is None:
            yield pool, None
            return
        with DepthFeed(job.estimator, pool.images.array, pool.depths.array, pad=job.compiled) as feed:
            yield pool, feed


def run_shards(job: Job, store: OutputStore, rank: int, world_size: int, threads: int = 1,
               on_rows: Callable[[int], None] = lambda n: None, on_shard: Callable[[], None] = lambda: None,
               on_wait: Callable[[], None] = lambda: None) -> list[ShardTask]:
    """Write this rank's unfinished shards (round-robin over every config's shards); returns every task. CPU work
    runs in `job.workers` processes (default: `threads`, the rank's share of the cores, or in this process when
    that share is one core: a single worker only adds the copies to and from it; measured on 2 cores with 2
    ranks, 725-791 rows/s with one worker each against 814-842 in-process).

    Ground placement by stored depth goes in two steps: every rank writes its `backgrounds` shards, then
    the others' it finds unclaimed, and waits (calling `on_wait`, e.g. a dead-rank check, at each poll) for those
    another rank is writing (`write_prerequisites`); it reads their stored depth, then writes the rest."""
    tasks = job.tasks()
    mine = [t for t in tasks_for_process(tasks, rank, world_size) if not store.is_done(t)]
    prerequisites = prerequisite_tasks(job)
    if prerequisites:
        rest = [t for t in mine if t not in prerequisites]
        write_prerequisites(job, store, [t for t in mine if t in prerequisites], threads, on_rows, on_shard,
                            on_wait, every=bool(rest))
        if rest:
            job = job.with_stored_bg_depth(shard_depth(job.settings, job.ctx.inputs.stores_given_depth, job.ctx.plan,
                                                       prerequisites, store))
        mine = rest
    _write_shards(job, store, mine, threads, on_rows, on_shard)
    return tasks


def shard_depth(settings: ContentSettings, given_depth: bool, plan: SplitPlan, tasks: list[ShardTask],
                store: OutputStore) -> ShardDepth:
    """The stored depth of the backgrounds in these `backgrounds` shards (`given_depth`: their --bg-depth-dir maps',
    else the model's), read back from them when asked: where each background's row is."""
    config, where = CONFIG_BY_NAME[BACKGROUNDS.name], {}
    shards = ShardStore(open_folder(store.folder.location))  # without the run's held locks: workers unpickle it
    for task in tasks:
        keys, shard = config.keys(plan, task.name.split), shards.shard(task.name)
        where.update((keys[p], (shard, p - task.start)) for p in range(task.start, task.stop))
    return ShardDepth(settings, given_depth, where)


def prerequisite_tasks(job: Job) -> list[ShardTask]:
    """Shards every other shard is derived from: the backgrounds, whose stored depth ground placement reads."""
    return [t for t in job.tasks() if t.config_name == BACKGROUNDS.name] if job.needs_stored_bg_depth else []


def write_prerequisites(job: Job, store: OutputStore, own: list[ShardTask], threads: int,
                        on_rows: Callable[[int], None], on_shard: Callable[[], None], on_wait: Callable[[], None],
                        every: bool) -> None:
    """This process's own prerequisite shards and, with `every` (it reads them all back), the others too, until
    all of them are done. Each is written under its claim (`OutputStore.claim`): processes running at once split
    them, and none waits for a process that has not started (an array throttled to one task at a time: the first
    task writes them all). A shard another process is writing is waited for (a claim is only ever held by a
    running process), calling `on_wait` at each poll, and written here if that process ends without finishing it."""
    pending = own + ([t for t in prerequisite_tasks(job) if t not in own] if every else [])
    while pending := _write_shards(job, store, [t for t in pending if not store.is_done(t)], threads, on_rows,
                                   on_shard, claimed=True):
        on_wait()
        time.sleep(store.POLL_SECONDS)


def _write_shards(job: Job, store: OutputStore, tasks: list[ShardTask], threads: int,
                  on_rows: Callable[[int], None], on_shard: Callable[[], None],
                  claimed: bool = False) -> list[ShardTask]:
    """Write the tasks' shards, each under its claim when `claimed` (skipping one done meanwhile); returns those
    whose claim another process holds. The worker pool starts with the first shard this process writes."""
    workers = job.workers if job.workers is not None else (threads if threads > 1 else 0)
    taken = []
    with contextlib.ExitStack() as stack:
        opened = None
        for task in tasks:
            with store.claim(task.name) if claimed else contextlib.nullcontext(True) as ours:
                if not ours:
                    taken.append(task)
                    continue
                if claimed and store.is_done(task):
                    continue
                opened = opened or stack.enter_context(open_workers(job, workers))
                store.write_shard(task, job.schema(task.config_name), job.render(task, *opened), on_rows=on_rows)
                on_shard()
    return taken


def iter_rows(config: GenerateConfig, tasks: list[ShardTask], device) -> Iterator[dict]:
    """Rows of the given shard tasks, rendered in this process (used by fgbg_depth.FgBgDepth)."""
    job = load_job(config, device)
    prerequisites = prerequisite_tasks(job)
    if prerequisites and any(t.config_name != BACKGROUNDS.name for t in tasks):
        given_depth = job.ctx.inputs.stores_given_depth
        with open_workers(job, 0) as (pool, feed):
            columns = [*depth_columns(given_depth), *([FOCAL_COLUMN] if job.field_of_view else [])]
            cells = {row["bg_id"]: {column: row[column] for column in columns}
                     for task in prerequisites for batch, _ in job.render(task, pool, feed) for row in batch.to_pylist()}
        job = job.with_stored_bg_depth(RowDepth(job.settings, given_depth, cells))
    with open_workers(job, 0) as (pool, feed):
        for task in tasks:
            for batch, _ in job.render(task, pool, feed):
                yield from batch.to_pylist()
