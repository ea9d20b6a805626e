"""A dead rank must not hang the job: ranks started directly (as srun or mpirun start them: RANK, WORLD_SIZE,
MASTER_ADDR, ... set, no torchrun to stop the others), one of them SIGKILLed mid-run; and rank 0 failing in
prepare with the other rank waiting for it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.contract.errors import FgbgError
from builder.contract.plan import ShardName, ShardTask
from builder.run.liveness import Heartbeat, RankWatch
from builder.store.output import OutputStore
from builder.store.local import LocalFolder
from builder.store.ranks import RankFiles
from builder.verify.runner import verify
from tests.conftest import GENERATE, LAUNCHER, SMALL, env, held_rendezvous, read_config

TIMEOUT_S = 5  # FGBG_RANK_TIMEOUT for these runs
NO_DEPTH = [*SMALL, "--no-depth"]


def start_ranks(out: Path, args: list[str], faults: dict[int, str] = (), world: int = 2) -> list[subprocess.Popen]:
    store, rendezvous = held_rendezvous()
    faults = dict(faults)
    procs = []
    for rank in range(world):
        extra = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
                 **rendezvous, "FGBG_RANK_TIMEOUT": str(TIMEOUT_S)}
        script = GENERATE
        if rank in faults:
            script, extra["FGBG_FAULT"] = LAUNCHER, faults[rank]
        procs.append(subprocess.Popen([sys.executable, str(script), "--output-dir", str(out), *args], env=env(**extra),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        procs[-1].rendezvous_store = store  # held open as long as the ranks are referenced
    return procs


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, float]:
    """Exit status, stderr, and the time it exited (time.monotonic)."""
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr, time.monotonic()


def test_killed_rank_stops_the_main_process_and_the_rerun_completes(tmp_path, no_depth_reference):
    reference = no_depth_reference
    out = tmp_path / "out"
    rank0, rank1 = start_ranks(out, NO_DEPTH, faults={1: "kill-after-batches:1"})
    code1, _, died = finish(rank1)
    code0, stderr0, exited = finish(rank0)
    assert code1 == -9  # SIGKILL mid-shard
    assert code0 == 1, stderr0
    print(f"rank 0 exited {exited - died:.1f} s after rank 1 was killed (timeout {TIMEOUT_S} s)")
    # rank 0 finishes its own shard first (a few seconds on busy CPUs), then the timeout runs out
    assert exited - died < TIMEOUT_S + 30
    assert "rank 1 sent no heartbeat" in stderr0 and "rerun the same command" in stderr0
    done = {marker.name for marker in OutputStore(out).done_markers()}
    missing = [m.name.relative_path() for m in OutputStore(reference).done_markers() if m.name not in done]
    assert missing and all(name in stderr0 for name in missing)

    for code, stderr, _ in [finish(p) for p in start_ranks(out, NO_DEPTH)]:
        assert code == 0, stderr
    assert verify(out).ok
    for config in ("default", "backgrounds", "foregrounds"):
        ours, theirs = read_config(out, config), read_config(reference, config)
        assert ours.column_names == theirs.column_names
        for column in ours.column_names:
            assert ours.column(column).equals(theirs.column(column)), f"{config}.{column} differs"


def test_rank0_failing_in_prepare_stops_the_other_rank_at_once(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    rank0, rank1 = start_ranks(out, NO_DEPTH)
    code0, stderr0, exited0 = finish(rank0)
    code1, stderr1, exited1 = finish(rank1, timeout=60)
    assert code0 == code1 == 2
    message = "already holds other files (notes.txt)"
    assert message in stderr0 and message in stderr1 and "rank 0 could not prepare" in stderr1
    assert abs(exited1 - exited0) < 10
    assert not (out / "data").exists()


def task(config: str, index: int) -> ShardTask:
    return ShardTask(ShardName(config, "train", index, 3), index * 10, index * 10 + 10)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_watch_names_the_missing_shards_of_a_silent_rank(tmp_path):
    clock, done = Clock(), {task("default", 1)}
    (tmp_path / "rank-1.alive").touch()
    ranks = {1: [task("default", 1), task("default", 2)]}
    watch = RankWatch(RankFiles(LocalFolder(tmp_path)), ranks, done.__contains__, 10, clock)
    watch.check()
    clock.now = 9
    watch.check()  # not yet
    clock.now = 11
    with pytest.raises(FgbgError, match=r"rank 1 sent no heartbeat for 11 s.*1 unfinished shard\(s\).*"
                                        r"data/default/train-00002-of-00003.arrow"):
        watch.check()


def test_watch_keeps_a_beating_rank_and_ignores_finished_ones(tmp_path):
    clock = Clock()
    with Heartbeat(RankFiles(LocalFolder(tmp_path)), 1, interval=0.05):
        watch = RankWatch(RankFiles(LocalFolder(tmp_path)), {1: [task("default", 0)]}, lambda t: False, 10, clock)
        for step in range(5):
            time.sleep(0.2)  # the heartbeat thread touches the file meanwhile
            clock.now = 9 * (step + 1)
            watch.check()
    assert (tmp_path / "rank-1.finished").exists()
    clock.now = 1000
    watch.check()  # finished: never stale


def test_a_rank_that_raised_is_reported_at_once(tmp_path):
    with pytest.raises(RuntimeError), Heartbeat(RankFiles(LocalFolder(tmp_path)), 1, interval=60):
        raise RuntimeError("model file unreadable")
    watch = RankWatch(RankFiles(LocalFolder(tmp_path)), {1: [task("default", 0)]}, lambda t: False, 1000, Clock())
    with pytest.raises(FgbgError, match="rank 1 failed .RuntimeError: model file unreadable"):
        watch.check()
