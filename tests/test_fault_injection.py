"""Crash safety: SIGKILL at chosen and at random moments, a full disk, and two runs into one folder.

After each fault the visible data is never half-written, the rerun of the same command completes, and the
result equals an uninterrupted run's byte for byte (every column, stats.json, sample grids) and passes
`verify`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from builder.verify.runner import verify
from fgbg_depth import CONFIG_NAMES
from tests.conftest import LAUNCHER, Generation, assert_reused, env, finished_shards, read_config, run_generate
from tests.fault_launcher import shard_bytes_on_disk

RANDOM_SEED = 20240607  # the random kill times are reproducible; they are printed on failure


def run_with_fault(out: Path, args: list[str], fault: str | None = None, **extra_env) -> subprocess.CompletedProcess:
    fault_env = {"FGBG_FAULT": fault} if fault else {}
    return subprocess.run([sys.executable, str(LAUNCHER), "--output-dir", str(out), *args], capture_output=True,
                          text=True, env=env(**fault_env, **extra_env), timeout=300)


# The small settings (tests/conftest.py SMALL): the demo's 4 backgrounds x 3 cut-outs x 2 flips x 2 placements
# = 48 samples in shards of 20; one row per background and per cut-out.
SHARD_ROWS = {"default": [20, 20, 8], "backgrounds": [4], "foregrounds": [3]}
TOTAL_SHARDS = sum(len(rows) for rows in SHARD_ROWS.values())


def assert_nothing_half_visible(out: Path) -> None:
    """Every shard a reader can see is whole: it reads to the end and holds its full row count."""
    for name in CONFIG_NAMES:
        for path in (out / "data" / name).glob("*") if (out / "data" / name).is_dir() else []:
            assert path.suffix == ".arrow" and not path.name.startswith("."), f"stray file {path}"
            with pa.memory_map(str(path), "r") as source:
                rows = pa.ipc.open_stream(source).read_all().num_rows  # raises on a truncated stream
            index, count = (int(part) for part in path.stem.split("-")[1::2])
            assert count == len(SHARD_ROWS[name]), f"{path.name}: {count} shards, expected {len(SHARD_ROWS[name])}"
            assert rows == SHARD_ROWS[name][index], f"{path}: {rows} rows, expected {SHARD_ROWS[name][index]}"


DEPTH_COLUMNS = {"depth", "depth_min", "depth_max"}


def assert_same_as_reference(out: Path, reference: Path, exact_depth: bool = True) -> None:
    """`exact_depth=False` where part of the data came from a run with another thread count per process
    (see test_determinism.py): then depth may differ in the last bits, everything else may not."""
    report = verify(out)
    assert report.ok, "\n".join(report.problems)
    for name in CONFIG_NAMES:
        ours, theirs = read_config(out, name), read_config(reference, name)
        assert ours.column_names == theirs.column_names
        for column in ours.column_names:
            if exact_depth or column not in DEPTH_COLUMNS:
                assert ours.column(column).equals(theirs.column(column)), f"{name}.{column} differs"
    ours, theirs = (json.loads((path / "stats.json").read_text()) for path in (out, reference))
    if exact_depth:
        assert ours == theirs
    else:
        assert {k: v for k, v in ours["kinds"].items() if "depth" not in k} == \
            {k: v for k, v in theirs["kinds"].items() if "depth" not in k}
    for grid in sorted((reference / "images").glob("*.png")):
        if exact_depth or grid.stem != "depth":
            assert (out / "images" / grid.name).read_bytes() == grid.read_bytes(), grid.name
    leftovers = [p for p in out.rglob("*.tmp")]
    assert not leftovers, f"temp files left behind: {leftovers}"


@pytest.mark.parametrize("faults", [
    # first shard with one batch in its temp file; then the rerun dies between renaming a shard into
    # place and writing its done marker
    ["kill-after-batches:1", "kill-before-marker:2"],
    # second shard mid write; then in the card step after 2 of 5 grids; then half-way through stats.json
    ["kill-after-batches:5", "kill-after-grids:2", "kill-in-stats"],
], ids=lambda f: "+".join(f))
def test_kill_at_chosen_moment_then_rerun(tmp_path, small_args, reference_dataset, faults):
    out = tmp_path / "out"
    for fault in faults:
        killed = run_with_fault(out, small_args, fault)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert_nothing_half_visible(out)
        assert not (out / "stats.json").exists()  # written last: a dataset without it is visibly unfinished
    before = finished_shards(out)
    assert before, "no finished shard: the rerun would have nothing to reuse"
    rerun = run_generate(out, *small_args)
    assert_reused(out, before, rerun.stderr)
    assert_same_as_reference(out, reference_dataset)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it. Not a process-group kill: torchrun starts each worker
    in a session of its own, so killing its group would leave the workers running (and writing) on."""
    import psutil

    processes = [psutil.Process(process.pid)]
    processes += processes[0].children(recursive=True)
    for member in processes:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()
    psutil.wait_procs(processes, timeout=30)  # gone, so they no longer hold the lock


@pytest.mark.parametrize("trial,processes", [(0, 1), (1, 2), (2, 1)])
def test_kill_at_random_moment_then_rerun(tmp_path, small_args, reference_dataset, trial, processes):
    """SIGKILL the launcher and its workers at a random point of the writing phase: once the shard bytes on disk
    (finished shards plus temp files) pass a seeded random fraction of the whole dataset's. The ranks hold at
    their next record batch past that point (tests/fault_launcher.py), so the run cannot end before the kill
    lands, however late a loaded machine lets this test poll."""
    fraction = float(np.random.default_rng([RANDOM_SEED, trial]).uniform(0.05, 0.75))
    target = int(fraction * sum(path.stat().st_size for path in (reference_dataset / "data").glob("*/*.arrow")))
    out = tmp_path / "out"
    run = Generation(out, *small_args, processes=processes, fault=f"hold-at-bytes:{target}")
    process = run.process
    run.wait_until_held()
    kill_tree(process)
    before = finished_shards(out)
    print(f"trial {trial} ({processes} process(es)): killed at {shard_bytes_on_disk(out)} bytes written "
          f"(target {fraction:.0%} = {target}), {len(before)}/{TOTAL_SHARDS} shards done")
    assert process.returncode == -signal.SIGKILL, "the run ended on its own before the kill"
    assert not (out / "stats.json").exists() and len(before) < TOTAL_SHARDS, "killed after the run had finished"
    assert_nothing_half_visible(out)
    rerun = run_generate(out, *small_args)
    assert_reused(out, before, rerun.stderr)
    # Two processes run one thread each, the reference (one process) two: depth may differ in the last bits.
    assert_same_as_reference(out, reference_dataset, exact_depth=processes == 1)


def test_disk_full_mid_shard_then_rerun(tmp_path, small_args, reference_dataset):
    """RLIMIT_FSIZE (SIGXFSZ ignored) makes every write beyond 200 KB fail with EFBIG, like a full disk."""
    out = tmp_path / "out"
    full = run_with_fault(out, small_args, FGBG_FSIZE_LIMIT="200000")
    assert full.returncode == 1, full.stderr[-3000:]
    assert "error: out of disk space while writing into" in full.stderr
    assert "rerun the same command to resume" in full.stderr
    assert "Traceback" not in full.stderr
    assert not [p for p in out.joinpath("data").rglob("*") if p.is_file()]  # no half shard visible
    assert not list((out / ".fgbg" / "tmp").glob("*"))  # and none hidden either
    assert not list((out / ".fgbg" / "done").glob("*"))
    run_generate(out, *small_args)  # "after freeing space"
    assert_same_as_reference(out, reference_dataset)


def test_second_generation_into_the_same_folder_refuses(tmp_path, small_args, reference_dataset):
    out, release = tmp_path / "out", tmp_path / "release"
    first = subprocess.Popen([sys.executable, str(LAUNCHER), "--output-dir", str(out), *small_args],
                             env=env(FGBG_FAULT=f"hold-until:{release}"), stderr=subprocess.PIPE, text=True)
    try:
        assert "holding the lock" in first.stderr.readline() or "holding the lock" in _wait_line(first)
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        seconds = [Generation(out, *small_args, *extra) for extra in ([], ["--overwrite"])]  # side by side
        for second in [run.wait() for run in seconds]:
            assert second.returncode == 2, second.stderr[-3000:]
            assert f"another generation is writing into {out} right now" in second.stderr
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # --overwrite deleted nothing
    finally:
        release.touch()
    _, rest = first.communicate(timeout=300)  # drain stderr so the first run can never block on a full pipe
    assert first.returncode == 0, rest[-3000:]
    assert_same_as_reference(out, reference_dataset)


def _wait_line(process: subprocess.Popen) -> str:
    """Read stderr lines (model-loading chatter) until the launcher says it holds the lock."""
    for line in process.stderr:
        if "holding the lock" in line:
            return line
    return ""
