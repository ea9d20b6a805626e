"""Which independent task a process is: from --rank/--world-size, a SLURM job array's variables, or a Kubernetes
Indexed Job's index; every incomplete or contradictory combination is a usage error (exit 2)."""

from __future__ import annotations

import pytest

from builder.contract.errors import UsageError
from builder.run.tasks import TaskSlot, task_slot

SLURM = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
         "SLURM_ARRAY_TASK_MAX": "2"}  # sbatch --array=0-2
RESUBMITTED = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "3",
               "SLURM_ARRAY_TASK_MAX": "7"}  # sbatch --array=3,7: the failed tasks of a run of 8


def test_no_rank_anywhere_is_not_a_task():
    assert task_slot(None, None, {}) is None
    assert task_slot(None, None, {"WORLD_SIZE": "4", "RANK": "1"}) is None  # a torchrun rank


def test_flags():
    assert task_slot(1, 3, {}) == TaskSlot(1, 3, "--rank/--world-size")
    assert task_slot(1, 3, SLURM).rank == 1  # the flags win over the scheduler's variables
    assert task_slot(0, 3, {}).name == "task-0-of-3"


def test_slurm_array():
    assert task_slot(None, None, SLURM) == TaskSlot(2, 3, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    assert task_slot(None, 8, RESUBMITTED) == TaskSlot(7, 8, "SLURM_ARRAY_TASK_ID and --world-size")
    throttled = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"}  # no MIN/MAX: an older SLURM
    assert task_slot(None, None, throttled) == TaskSlot(1, 3, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")


def test_kubernetes_indexed_job():
    assert task_slot(None, 4, {"JOB_COMPLETION_INDEX": "3"}) == TaskSlot(3, 4, "JOB_COMPLETION_INDEX and --world-size")


@pytest.mark.parametrize("rank, world, environ, message", [
    (1, None, {}, "give --world-size N"),
    (3, 3, {}, "rank 3 is outside 0..2"),
    (-1, 3, {}, "rank -1 is outside 0..2"),
    (None, 3, {}, "--world-size 3 needs a rank"),
    (None, None, {"JOB_COMPLETION_INDEX": "0"}, "pass --world-size N, the Job's completions"),
    (None, None, {"SLURM_ARRAY_TASK_ID": "0"}, "SLURM_ARRAY_TASK_COUNT is not"),
    (None, None, RESUBMITTED, "this SLURM array is not --array=0-1 (SLURM_ARRAY_TASK_MIN=3, SLURM_ARRAY_TASK_MAX=7"),
    (None, None, {**SLURM, "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3"}, "pass --world-size N"),
    (None, 3, {**SLURM, "SLURM_ARRAY_TASK_ID": "3"}, "rank 3 is outside 0..2 (a SLURM array runs --array=0-2)"),
    (None, None, {**SLURM, "SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' is not a whole number"),
    (0, 2, {"WORLD_SIZE": "2"}, "also started as one rank of a torchrun/accelerate group"),
])
def test_usage_errors(rank, world, environ, message):
    with pytest.raises(UsageError) as caught:
        task_slot(rank, world, environ)
    assert message in str(caught.value) and caught.value.exit_code == 2


def test_overwrite_is_refused_for_tasks():
    with pytest.raises(UsageError, match="--overwrite with independent tasks"):
        task_slot(0, 2, {}, overwrite=True)
    assert task_slot(None, None, {}, overwrite=True) is None  # a plain run may overwrite
