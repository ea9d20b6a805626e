"""Determinism across world sizes: 1, 2 and 3 CPU processes (torchrun) give the same dataset.

`fg_bg` and `mask` (and every other non-depth column) are byte-identical whatever the process count. Depth
comes from float32 CPU kernels whose reductions depend on the number of intra-op threads, and the generator
gives each process cores // processes threads (2 for one process here, 1 for two or three). So:

* same threads per process: every shard file and stats.json identical. Every run here is pinned to at most
  one core per process (the 2- and 3-process runs to their first 2 or 3 cores, the extra single-process run
  to one), so each process computes with one thread whatever the machine's core count;
* the shared single-process reference at its default threads (all cores) against those: depth PNGs within a
  few 1/65535 steps of each other, stats.json identical except the depth kinds.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from builder.verify.runner import verify
from fgbg_depth import CONFIG_NAMES
from tests.conftest import Generation, read_config, run_generate_together, shard_files

DEPTH_COLUMNS = {"depth", "depth_min", "depth_max"}


def pinned_to(cores: int):
    """A preexec_fn that limits the run to its first `cores` allowed CPUs; the generator gives each process
    (allowed CPUs) // processes threads, so `cores` <= processes means one thread per process."""
    def pin() -> None:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
    return pin


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_args, reference_dataset):
    base = tmp_path_factory.mktemp("world-sizes")
    outs = {"1": reference_dataset}
    runs = []
    for processes in (2, 3):
        outs[str(processes)] = base / f"processes-{processes}"
        runs.append(Generation(outs[str(processes)], *small_args, processes=processes,
                               preexec_fn=pinned_to(processes)))
    outs["1-one-core"] = base / "processes-1-one-core"
    runs.append(Generation(outs["1-one-core"], *small_args, preexec_fn=pinned_to(1)))
    run_generate_together(*runs)  # side by side: pinned, each process computes with one thread all the same
    return outs


def test_every_run_verifies(runs):
    for name, out in runs.items():
        report = verify(out)
        assert report.ok, f"{name} processes:\n" + "\n".join(report.problems)


@pytest.mark.parametrize("processes", ["2", "3"])
def test_fg_bg_and_mask_identical_at_default_threads(runs, processes):
    one, many = runs["1"], runs[processes]
    for name in CONFIG_NAMES:
        ours, theirs = read_config(one, name), read_config(many, name)
        for column in set(ours.column_names) - DEPTH_COLUMNS:
            assert ours.column(column).equals(theirs.column(column)), f"{name}.{column}"
    a = read_config(one, "default").column("depth").to_pylist()
    b = read_config(many, "default").column("depth").to_pylist()
    worst = max(int(np.abs(np.asarray(Image.open(io.BytesIO(x["bytes"]))).astype(np.int64)
                           - np.asarray(Image.open(io.BytesIO(y["bytes"])))).max()) for x, y in zip(a, b))
    assert worst <= 4, f"depth differs by {worst}/65535 between 1 and {processes} processes"
    stats_one, stats_many = (json.loads((out / "stats.json").read_text()) for out in (one, many))
    for kind in ("fg_bg", "mask", "bg", "fg", "fg_mask"):
        assert stats_one["kinds"][kind] == stats_many["kinds"][kind], kind
    assert stats_one["rows"] == stats_many["rows"] and stats_one["shards"] == stats_many["shards"]


def test_everything_identical_at_equal_threads_per_process(runs):
    reference = runs["1-one-core"]
    for processes in ("2", "3"):
        assert shard_files(runs[processes]) == shard_files(reference), f"{processes} processes"
        assert (runs[processes] / "stats.json").read_bytes() == (reference / "stats.json").read_bytes()
