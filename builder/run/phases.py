"""A generation in three phases, behind one seam, the `Launcher`:

- prepare: the manifest written or checked, the locks taken (after the inputs were validated and the model
  loaded, so nothing is written for a run that cannot start);
- work: each process writes its own shards (`pipeline.run_shards`, round-robin over every shard);
- finish: once every shard is finished, stats.json, the grids and the card from the done markers.

A launcher is how the processes of a run meet. `launch.ProcessGroup` is one torch.distributed group (torchrun,
accelerate): rank 0 prepares, every rank works, rank 0 waits for the others (and notices a dead one) and
finishes. `tasks.IndependentTask` shares no group: it prepares idempotently, works, and leaves; `finish_folder`
(`scripts/generate.py --finish`) is the finish, run once after every task.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Protocol

from builder.contract.plan import ShardTask, tasks_for_process
from builder.contract.settings import GenerateConfig
from builder.run.pipeline import Job, load_job, prerequisite_tasks, run_shards
from builder.run.progress import JobProgress
from builder.store.output import OutputStore


@dataclasses.dataclass
class Run:
    """One process's part of a generation, as the launcher's phases see it."""

    job: Job
    store: OutputStore
    rank: int
    world_size: int
    threads: int
    device: str
    started: float  # on the monotonic clock
    finisher: Finisher
    rows_written: int = 0  # by this process, in this run

    @functools.cached_property
    def tasks(self) -> list[ShardTask]:
        """Every shard of the dataset."""
        return self.job.tasks()

    @functools.cached_property
    def mine(self) -> list[ShardTask]:
        """This process's shards."""
        return tasks_for_process(self.tasks, self.rank, self.world_size)

    def count_written(self, rows: int) -> None:
        self.rows_written += rows

    @property
    def mine_unclaimed(self) -> list[ShardTask]:
        """This process's shards that no other process writes (prerequisites are written under claims)."""
        prerequisites = prerequisite_tasks(self.job)
        return [task for task in self.mine if task not in prerequisites]

    def write_mine(self, progress: JobProgress, on_shard: Callable[[], None] = lambda: None,
                   on_wait: Callable[[], None] = lambda: None) -> None:
        """The work: this process's unfinished shards, written through the one work seam."""
        def rows_done(rows: int) -> None:
            self.count_written(rows)
            progress.advance(rows)

        def shard_done() -> None:
            progress.shard_done()
            on_shard()

        run_shards(self.job, self.store, self.rank, self.world_size, self.threads, on_rows=rows_done,
                   on_shard=shard_done, on_wait=on_wait)


class Finisher(Protocol):
    """What the finish phase writes from the done markers (stats.json, the grids, the card): builder.publish.card,
    handed in by the entry point, since running a generation imports nothing of publishing."""

    def write_card(self, store: OutputStore, tasks: list[ShardTask]) -> dict: ...

    def finish(self, store: OutputStore, tasks: list[ShardTask], elapsed: float, resumed_rows: int, processes: int,
               device: str) -> dict: ...

    def summary_text(self, summary: dict) -> str: ...

    def human_bytes(self, n: int) -> str: ...


class Launcher(Protocol):
    """How the processes of a run meet, phase by phase."""

    rank: int
    world_size: int

    def prepare(self, run: Run, overwrite: bool) -> None:
        """Write or check the manifest and take the locks; every process raises the same error if that fails."""

    def work(self, run: Run) -> JobProgress:
        """Write this process's shards (and, where the launcher waits, wait for the others'); its progress."""

    def finish(self, run: Run, progress: JobProgress) -> dict | None:
        """What follows the work on this process; the summary it reports, or None."""


def generate_dataset(config: GenerateConfig, launcher: Launcher, device, threads: int,
                     log: Callable[[str], None], started: float, finisher: Finisher) -> dict | None:
    """The three phases on this process (`started`: when it started, on the monotonic clock); the summary, where
    the launcher reports one."""
    job = load_job(config, device, log)
    run = Run(job, OutputStore(config.run.output_dir), launcher.rank, launcher.world_size, threads, str(device),
              started, finisher)
    launcher.prepare(run, config.run.overwrite)
    progress = launcher.work(run)
    summary = launcher.finish(run, progress)
    if summary is not None:
        write_summary(config, summary)
    return summary


def write_summary(config: GenerateConfig, summary: dict) -> None:
    if config.run.summary_json is not None:
        config.run.summary_json.write_text(json.dumps(summary, indent=2) + "\n")


def finish_folder(config: GenerateConfig, finisher: Finisher, log: Callable[[str], None]) -> dict:
    """`--finish`: from the folder alone (its manifest, done markers and shards; no input is read and no model
    loaded), check that every shard is finished, else exit 1 naming the others, then write stats.json, the grids
    and the card. Running it again rewrites the same files."""
    from builder.rows.configs import dataset_tasks

    store = OutputStore(config.run.output_dir)
    manifest = store.prepare_finish()
    stats = finisher.write_card(store, dataset_tasks(manifest.split_plan(), manifest.settings.shard_size))
    summary = {"rows": stats["rows"], "data_bytes": stats["data_bytes"], "card": store.card_path()}
    rows = ", ".join(f"{name} {n:,}" for name, n in stats["rows"].items())
    log(f"finished: {rows} rows; {finisher.human_bytes(stats['data_bytes'])} of shards; card: {summary['card']}")
    write_summary(config, summary)
    return summary
