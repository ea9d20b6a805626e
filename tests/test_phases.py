"""Prepare / work / finish with independent tasks, as a cluster runs them: three tasks started at once into one
folder (ranks from flags, or from a SLURM job array's variables), each writing only its shards, then
`--finish`: the same shards and stats.json as one process. An early `--finish` names the missing shards; the
folder lock, the per-task locks and the manifest check keep concurrent and mismatched tasks apart."""

from __future__ import annotations

import fcntl
import re
import subprocess

import pytest

from tests.conftest import Generation, env, generate_cmd, run_generate, run_generate_together

FLAGS = {rank: (["--rank", str(rank), "--world-size", "3"], {}) for rank in range(3)}
SLURM = {rank: ([], {"SLURM_ARRAY_TASK_ID": str(rank), "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2",
                     "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_JOB_ID": "77"}) for rank in range(3)}


def run_tasks(out, args, tasks: dict, ranks) -> list[subprocess.CompletedProcess]:
    """The given tasks started together, as a scheduler starts array tasks; their results in rank order."""
    started = {rank: subprocess.Popen(generate_cmd(out, *args, *tasks[rank][0]), env=env(**tasks[rank][1]),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in ranks}
    results = []
    for rank, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def finish(out) -> subprocess.CompletedProcess:
    return run_generate(out, "--finish", check=False)


def outputs(out) -> dict[str, bytes]:
    """What must not depend on how the work was split: shards, stats.json, grids, done markers."""
    paths = [*out.glob("data/*/*.arrow"), out / "stats.json", *out.glob("images/*.png"), *out.glob(".fgbg/done/*")]
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(paths)}


@pytest.mark.parametrize("tasks", [FLAGS, SLURM], ids=["flags", "slurm-array"])
def test_three_tasks_and_finish_equal_one_process(tmp_path, small_args, reference_dataset, tasks):
    out = tmp_path / "out"
    written = 0
    for result in run_tasks(out, small_args, tasks, range(3)):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Once every task has finished" in result.stderr
        written += int(re.search(r"this run wrote (\d+) rows", result.stderr).group(1))
    assert written == 48 + 4 + 3  # each task wrote only its own shards
    assert not (out / "stats.json").exists() and not (out / "README.md").exists()  # a task writes neither
    done = finish(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert outputs(out) == outputs(reference_dataset)
    assert len(outputs(out)) == 5 + 1 + 5 + 5  # 3 + 1 + 1 shards, stats.json, 5 grids, 5 done markers

    import datasets
    assert datasets.load_dataset(str(out), "default", split="train").num_rows == 48


def test_early_finish_names_missing_shards_and_finish_is_safe_to_repeat(tmp_path, small_args, reference_dataset):
    out = tmp_path / "out"
    for result in run_tasks(out, small_args, FLAGS, [1, 2]):
        assert result.returncode == 0, result.stderr[-3000:]
    early = finish(out)
    assert early.returncode == 1
    # task 0 of 3 owns shards 0 and 3 of the dataset's 5: default 0 of 3, and the backgrounds shard
    assert "2 of 5 shard(s)" in early.stderr
    assert "data/default/train-00000-of-00003.arrow: no done marker" in early.stderr
    assert "data/backgrounds/train-00000-of-00001.arrow: no done marker" in early.stderr
    assert not (out / "stats.json").exists() and not (out / "README.md").exists()
    assert run_tasks(out, small_args, FLAGS, [0])[0].returncode == 0
    assert finish(out).returncode == 0
    first = outputs(out)
    assert finish(out).returncode == 0
    assert outputs(out) == first == outputs(reference_dataset)


def test_a_task_with_other_settings_is_refused(tmp_path, small_args):
    out = tmp_path / "out"
    assert run_tasks(out, ["--no-depth", *small_args], FLAGS, [0])[0].returncode == 0
    other = run_generate(out, "--no-depth", *small_args, "--seed", "1", "--rank", "1", "--world-size", "3",
                         check=False)
    assert other.returncode == 2
    assert f"{out} holds a dataset made with different settings; start every task with the same" in other.stderr
    assert not list(out.glob("data/*/train-00001-*.arrow"))


def hold(path, mode):
    """Take a lock the way another process would (flock locks belong to the open file, so this one conflicts
    with the generator's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    fcntl.flock(handle, mode | fcntl.LOCK_NB)
    return handle


def test_locks_are_per_task_and_keep_groups_and_finish_apart(tmp_path, small_args):
    out, args = tmp_path / "out", ["--no-depth", *small_args]
    with hold(out / ".fgbg" / "tasks" / "task-0-of-3.lock", fcntl.LOCK_EX):
        second_copy, other_task = run_tasks(out, args, FLAGS, [0, 1])
    assert second_copy.returncode == 2, second_copy.stderr[-2000:]
    assert "task-0-of-3 is already running on" in second_copy.stderr
    assert other_task.returncode == 0, other_task.stderr[-2000:]  # another task runs beside it
    with hold(out / ".fgbg" / "lock", fcntl.LOCK_SH):  # a task still running
        blocked, group = [run.wait() for run in (Generation(out, "--finish"), Generation(out, *args))]
    assert blocked.returncode == 2 and group.returncode == 2
    assert f"another generation is writing into {out} right now" in blocked.stderr + group.stderr
    with hold(out / ".fgbg" / "lock", fcntl.LOCK_EX):  # a torchrun/accelerate run, or a finish
        task = run_tasks(out, args, FLAGS, [2])[0]
    assert task.returncode == 2
    assert "a torchrun/accelerate generation or a --finish is writing into" in task.stderr


def test_overwrite_and_finish_flags(tmp_path, small_args):
    out = tmp_path / "out"
    refused = run_generate(out, *small_args, "--overwrite", "--rank", "0", "--world-size", "2", check=False)
    assert refused.returncode == 2 and "--overwrite with independent tasks" in refused.stderr
    refused = run_generate(out, "--finish", "--rank", "0", check=False)
    assert refused.returncode == 2 and "--finish runs once, after every task" in refused.stderr
    nothing = run_generate(out, "--finish", check=False)
    assert nothing.returncode == 2 and "has no manifest.json" in nothing.stderr
    assert not out.exists()


def test_ground_tasks_started_one_at_a_time_write_the_backgrounds_first(tmp_path, small_args):
    """Ground placement by the model reads the backgrounds' stored depth. An array throttled to one running task
    (`--array=0-2%1`) starts the tasks one after another: the first one, whichever shard it owns, claims and writes
    the backgrounds instead of waiting for their owner, which has not started. Same bytes as one process."""
    from builder.contract.plan import SampleSpace, SplitPlan, tasks_for_process
    from builder.rows.configs import dataset_tasks
    from tests.test_ground_e2e import R, write_scene_inputs

    bg_dir, fg_dir, _ = write_scene_inputs(tmp_path / "in")
    args = [*[a for a in small_args if a != "--demo"], "--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir),
            "--placement-mode", "ground", "--resolution", str(R)]
    space = SampleSpace(len(list(bg_dir.iterdir())), len(list(fg_dir.iterdir())), 2)
    tasks = dataset_tasks(SplitPlan.from_counts(space, 0, 0, 0), 20)
    owner = next(r for r in range(3) if any(t.config_name == "backgrounds" for t in tasks_for_process(tasks, r, 3)))
    reference = tmp_path / "one"
    one_process = Generation(reference, *args)  # in the background, beside the tasks
    out = tmp_path / "tasks"
    try:
        for rank in [r for r in range(3) if r != owner] + [owner]:  # the owner of the backgrounds last
            result = subprocess.run(generate_cmd(out, *args, *FLAGS[rank][0]), env=env(), capture_output=True,
                                    text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
        assert finish(out).returncode == 0
    finally:
        run_generate_together(one_process)
    assert outputs(out) == outputs(reference)


def test_a_task_of_another_world_size_is_refused_while_that_run_is_running(tmp_path, small_args):
    """Tasks of one run split the shards by one world size; a mistyped --world-size beside running tasks would
    write their shards and delete their temp files. Once they have ended, another world size is allowed."""
    out, args = tmp_path / "out", ["--no-depth", *small_args]
    with hold(out / ".fgbg" / "tasks" / "task-1-of-3.lock", fcntl.LOCK_EX):  # task 1 of 3 still running
        other = run_generate(out, *args, "--rank", "0", "--world-size", "2", check=False)
    assert other.returncode == 2, other.stderr[-2000:]
    assert "task-1-of-3 of a run with --world-size 3 is running on" in other.stderr
    assert "give --world-size 3" in other.stderr and not list(out.glob("data/*/*.arrow"))
    alone = run_generate(out, *args, "--rank", "0", "--world-size", "1", check=False)  # task-1-of-3.lock is free
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert finish(out).returncode == 0
