"""Independent tasks: processes that share no process group, each told its rank by its scheduler, each writing
its own shards (round-robin, as the ranks of a group do) and leaving without waiting for the others; a
`--finish` run makes stats.json, the grids and the card once every task has finished.

A task's rank comes from the first of:

- `--rank R --world-size N`;
- a SLURM job array: `SLURM_ARRAY_TASK_ID` of `SLURM_ARRAY_TASK_COUNT` for an array submitted whole as
  `--array=0-(N-1)`; of `--world-size N` for a part of one (failed tasks resubmitted: `--array=3,7`);
- a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX`, with `--world-size N` (the Job's `completions`).

These are run options, not content: every task writes the same manifest whatever its rank.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

from builder.contract.errors import UsageError
from builder.run.progress import JobProgress
from builder.store.names import task_lock_name

SLURM_ID, SLURM_COUNT = "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"
SLURM_MIN, SLURM_MAX = "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"
K8S_INDEX = "JOB_COMPLETION_INDEX"


@dataclasses.dataclass(frozen=True)
class TaskSlot:
    """Which independent task this process is, and where it learnt that."""

    rank: int
    world_size: int
    source: str

    @property
    def name(self) -> str:
        """Its lock's name; a second process with the same slot is refused."""
        return task_lock_name(self.rank, self.world_size)


def _number(environ: Mapping[str, str], key: str) -> int:
    text = environ[key]
    if not text.strip().isdigit():
        raise UsageError([f"{key}={text!r} is not a whole number"])
    return int(text)


def _whole_array(environ: Mapping[str, str]) -> int:
    """The world size of a SLURM array submitted whole, `--array=0-(N-1)` (any `%` limit): its task count. A
    partial array (some tasks resubmitted) or one not starting at 0 cannot tell; it needs --world-size N."""
    if SLURM_COUNT not in environ:
        raise UsageError([f"{SLURM_ID} is set but {SLURM_COUNT} is not (SLURM before 18.08?): pass --world-size N"])
    count = _number(environ, SLURM_COUNT)
    first = _number(environ, SLURM_MIN) if SLURM_MIN in environ else 0
    last = _number(environ, SLURM_MAX) if SLURM_MAX in environ else count - 1
    if (first, last) != (0, count - 1):
        raise UsageError([f"this SLURM array is not --array=0-{count - 1} ({SLURM_MIN}={first}, {SLURM_MAX}={last}, "
                          f"{SLURM_COUNT}={count}), so it does not say how many tasks the whole run has: pass "
                          "--world-size N (e.g. when resubmitting some tasks of a run of N: --array=3,7 and "
                          "--world-size N)"])
    return count


def task_slot(rank: int | None, world_size: int | None, environ: Mapping[str, str],
              overwrite: bool = False) -> TaskSlot | None:
    """This process's slot from the flags or the scheduler's variables; None when it is not an independent task
    (a single process, or a torchrun/accelerate group). UsageError when they are incomplete or contradict."""
    if rank is not None:
        slot = TaskSlot(rank, world_size, "--rank/--world-size")
    elif SLURM_ID in environ:
        if world_size is None:
            slot = TaskSlot(_number(environ, SLURM_ID), _whole_array(environ), f"{SLURM_ID}/{SLURM_COUNT}")
        else:
            slot = TaskSlot(_number(environ, SLURM_ID), world_size, f"{SLURM_ID} and --world-size")
    elif K8S_INDEX in environ:
        if world_size is None:
            raise UsageError([f"{K8S_INDEX} is set (a Kubernetes Indexed Job): pass --world-size N, the Job's "
                              "completions"])
        slot = TaskSlot(_number(environ, K8S_INDEX), world_size, f"{K8S_INDEX} and --world-size")
    elif world_size is not None:
        raise UsageError([f"--world-size {world_size} needs a rank: --rank R, a SLURM job array or {K8S_INDEX}"])
    else:
        return None
    if problems := slot_problems(slot, environ, overwrite):
        raise UsageError(problems)
    return slot


def slot_problems(slot: TaskSlot, environ: Mapping[str, str], overwrite: bool) -> list[str]:
    problems = []
    if slot.world_size is None or slot.world_size < 1:
        problems.append(f"{slot.source}: give --world-size N, the number of tasks (1 or more)")
    elif not 0 <= slot.rank < slot.world_size:
        hint = f" (a SLURM array runs --array=0-{slot.world_size - 1})" if slot.source.startswith(SLURM_ID) else ""
        problems.append(f"{slot.source}: rank {slot.rank} is outside 0..{slot.world_size - 1}{hint}")
    if int(environ.get("WORLD_SIZE", "1") or "1") > 1:
        problems.append(f"{slot.source} makes this process an independent task, but it was also started as one "
                        "rank of a torchrun/accelerate group (WORLD_SIZE is set): use one or the other")
    if overwrite:
        problems.append(f"--overwrite with independent tasks ({slot.source}): each task would delete the shards "
                        "the others are writing; delete the folder before starting the tasks instead")
    return problems


class IndependentTask:
    """The launcher of one independent task: prepares idempotently under its own lock, writes its shards, and
    leaves a summary of them; neither stats.json nor the card (that is `--finish`, once every task has finished)."""

    def __init__(self, slot: TaskSlot, log: Callable[[str], None]):
        self.slot, self.log = slot, log
        self.rank, self.world_size = slot.rank, slot.world_size

    def prepare(self, run, overwrite: bool) -> None:
        run.store.prepare_task(run.job.manifest(), self.slot.name, run.mine_unclaimed)

    def work(self, run) -> JobProgress:
        progress = JobProgress(run.store, run.mine, enabled=True)
        run.write_mine(progress)
        progress.close()
        return progress

    def finish(self, run, progress: JobProgress) -> dict:
        elapsed = time.monotonic() - run.started
        rows, written = sum(task.rows for task in run.mine), run.rows_written
        summary = {"task": self.rank, "world_size": self.world_size, "shards": len(run.mine), "rows": rows,
                   "rows_written": written, "elapsed_s": round(elapsed, 2), "rows_per_s": round(written / elapsed, 1),
                   "device": run.device}
        self.log(f"task {self.rank} of {self.world_size} ({self.slot.source}): its {len(run.mine)} shard(s), "
                 f"{rows:,} rows, are finished; this run wrote {written:,} rows in {elapsed:.1f} s "
                 f"({summary['rows_per_s']} rows/s on {run.device}). Once every task has finished: "
                 f"scripts/generate.py --output-dir {run.store.root} --finish")
        return summary
