"""`--rows N` / `--validation-rows M`: rows drawn instead of the full product. Row i draws its background, cut-out
and flip from `default_rng([seed, i, 4])` among its split's inputs; everything else (splits, objects, ground,
augment, processes, independent tasks and --finish, resume, verify) works as with the full product. Also the input
configs sharded by --shard-size and written by every process, and the claims that let processes share the
backgrounds that ground placement by model depth reads back."""

from __future__ import annotations

import json
import os
import re
import time

import datasets
import numpy as np
import pytest

from builder.contract.errors import UsageError
from builder.contract.plan import DrawnRows, SampleSpace, SplitPlan, tasks_for_process
from builder.contract.settings import GenerateConfig
from builder.rows.configs import dataset_tasks
from builder.store.output import OutputStore
from builder.verify.runner import verify
from tests.conftest import (Generation, assert_reused, killed_after_first_shard, read_config, run_generate,
                            run_generate_together, write_tampered_copy)
from tests.test_phases import finish, outputs

TRAIN_ROWS, VALIDATION_ROWS = 14, 5
ARGS = ["--demo", "--no-depth", "--resolution", 64, "--shard-size", 2, "--rows", TRAIN_ROWS, "--validation-rows",
        VALIDATION_ROWS, "--validation-backgrounds", 1, "--objects", "1-2", "--placement-mode", "ground",
        "--augment", "realistic"]


def tasks_args(rank: int) -> list:
    return [*ARGS, "--rank", rank, "--world-size", 2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same drawn dataset by 1 process, 2 torchrun ranks, and 2 independent tasks + --finish, side by side."""
    root = tmp_path_factory.mktemp("rows")
    tasks = [Generation(root / "tasks", *tasks_args(rank)) for rank in (0, 1)]
    results = run_generate_together(Generation(root / "one", *ARGS), Generation(root / "two", *ARGS, processes=2),
                                    *tasks)
    assert finish(root / "tasks").returncode == 0
    return {"root": root, "task_logs": [result.stderr for result in results[2:]]}


def drawn(seed: int, sample_id: int, backgrounds: list[int], foregrounds: list[int]) -> tuple[int, int, bool]:
    """The documented draw, written out here without the plan's code."""
    rng = np.random.default_rng([seed, sample_id, 4])
    return (backgrounds[rng.integers(len(backgrounds))], foregrounds[rng.integers(len(foregrounds))],
            bool(rng.integers(2)))


def test_drawn_rows_by_hand():
    plan = SplitPlan(SampleSpace(5, 4, None), frozenset({3}), frozenset({0, 2}), DrawnRows(7, 6, 3))
    assert plan.splits == ("train", "validation") and plan.sample_count == 9 and plan.dropped == 0
    assert list(plan.samples("train")) == list(range(6)) and list(plan.samples("validation")) == [6, 7, 8]
    for sample_id in range(9):
        split = plan.sample_split(sample_id)
        assert split == ("train" if sample_id < 6 else "validation")
        members = ([0, 1, 2, 4], [1, 3]) if split == "train" else ([3], [0, 2])
        bg, fg, flip = plan.inputs_of(sample_id)
        assert (bg, fg, bool(flip)) == drawn(7, sample_id, *members)
        assert plan.split_of(bg, fg) == split  # the pair rule holds for every drawn row
    with pytest.raises(IndexError):
        plan.inputs_of(9)
    nothing_held = SplitPlan(SampleSpace(5, 4, None), drawn=DrawnRows(7, 6))
    assert nothing_held.splits == ("train",) and nothing_held.sample_count == 6
    with pytest.raises(ValueError, match="no split 'validation'"):
        nothing_held.samples("validation")
    ids = [nothing_held.inputs_of(i) for i in range(6)]
    assert len({(bg, fg) for bg, fg, _ in ids}) > 1  # rows draw different inputs


@pytest.mark.parametrize("flags,says", [
    (["--rows", 10, "--validation-backgrounds", 1], "--rows 10 with held-out inputs"),
    (["--validation-rows", 4], "--validation-rows 4 needs --rows N"),
    (["--rows", 10, "--placements", 20], "--placements 20 does not apply with --rows"),
    (["--rows", 10, "--validation-rows", 4], "--validation-rows 4 draws among held-out inputs"),
    (["--rows", 0], "--rows 0: draw at least 1 row"),
])
def test_bad_row_settings_are_usage_errors(flags, says):
    with pytest.raises(UsageError) as caught:
        GenerateConfig.from_args(["--demo", "--output-dir", "out", *map(str, flags)])
    assert any(says in problem for problem in caught.value.problems), caught.value.problems


def test_bad_row_settings_exit_2_all_at_once_before_writing(tmp_path):
    out = tmp_path / "out"
    result = run_generate(out, "--demo", "--no-depth", "--rows", 5, "--placements", 3, "--validation-foregrounds", 1,
                          check=False)
    assert result.returncode == 2 and not out.exists()
    assert "--placements 3 does not apply with --rows" in result.stderr
    assert "give --validation-rows M" in result.stderr


def test_rows_round_trip_within_their_splits(runs):
    out = runs["root"] / "one"
    manifest = json.loads((out / "manifest.json").read_text())
    assert "placements" not in manifest["settings"] and manifest["settings"]["rows"] == TRAIN_ROWS
    names = [f["name"] for f in manifest["inputs"]["backgrounds"]]
    held_bg = [names.index(n) for n in manifest["held_out"]["backgrounds"]]
    members = {"train": [i for i in range(len(names)) if i not in held_bg], "validation": held_bg}
    for split, ids in (("train", range(TRAIN_ROWS)), ("validation", range(TRAIN_ROWS, TRAIN_ROWS + VALIDATION_ROWS))):
        rows = datasets.load_dataset(str(out), "default", split=split)
        assert rows["sample_id"] == list(ids)
        for row in rows:
            assert (row["bg_id"], row["fg_id"], row["flip"]) == drawn(0, row["sample_id"], members[split], [0, 1, 2])
            assert row["objects"][0]["fg_id"] == row["fg_id"]
        backgrounds = datasets.load_dataset(str(out), "backgrounds", split=split)
        assert backgrounds["bg_id"] == members[split]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["splits"]["validation"]["rows"]["default"] == VALIDATION_ROWS
    card = (out / "README.md").read_text()
    assert f"rows drawn at random, each one background, one cut-out and a flip (`--rows {TRAIN_ROWS}`" in card
    assert f"- rows drawn: {TRAIN_ROWS} train, {VALIDATION_ROWS} validation" in card
    assert "Drawn rows: `sample_id` 0 to 13 are train, 14 to 18 validation." in card and "Dropped pairs" not in card


def test_processes_and_tasks_give_the_same_bytes_and_every_one_writes_input_shards(runs):
    root = runs["root"]
    one = outputs(root / "one")
    assert outputs(root / "two") == one and outputs(root / "tasks") == one
    for config in ("backgrounds", "foregrounds"):
        assert len(list((root / "one" / "data" / config).glob("*.arrow"))) >= 3  # sharded by --shard-size
    tasks = dataset_tasks(OutputStore(root / "one").read_manifest().split_plan(), 2)
    for rank, log in enumerate(runs["task_logs"]):
        share = tasks_for_process(tasks, rank, 2)
        assert {t.config_name for t in share} == {"default", "backgrounds", "foregrounds"}
        written = int(re.search(r"this run wrote (\d+) rows", log).group(1))
        assert written == sum(t.rows for t in share)  # each task wrote exactly its share, input shards included


def test_verify_passes_and_names_a_tampered_drawn_row(runs, tmp_path):
    out = runs["root"] / "one"
    report = verify(out)
    assert report.ok, "\n".join(report.problems)
    schema = read_config(out, "default").schema
    rows = read_config(out, "default").to_pylist()
    train = [row for row in rows if row["sample_id"] < TRAIN_ROWS]
    victim = train[3]
    victim["bg_id"] = next(bg for bg in {r["bg_id"] for r in train} if bg != victim["bg_id"])
    problems = "\n".join(verify(write_tampered_copy(out, tmp_path / "bad", train, schema), sample=0).problems)
    assert f"sample_id {victim['sample_id']} is (bg_id, fg_id, flip) = " in problems
    assert problems.count("is (bg_id, fg_id, flip) = ") == 1, problems  # the other drawn rows re-derive


def test_killed_run_resumes_to_the_same_bytes(runs, tmp_path):
    out = tmp_path / "killed"
    before = killed_after_first_shard(out, *ARGS)
    rerun = run_generate(out, *ARGS)
    assert_reused(out, before, rerun.stderr)
    assert outputs(out) == outputs(runs["root"] / "one")


def test_tasks_share_the_backgrounds_ground_placement_reads_back(tmp_path, small_args):
    """Ground placement by the model's depth reads every background's stored depth. A backgrounds shard whose
    claim another process holds is not written twice: task 0 writes the others (its own and task 1's), waits, and
    writes that one itself once the claim is released without it (its writer gone). Same bytes as one process."""
    from builder.contract.plan import ShardName
    from tests.test_ground_e2e import write_scene_inputs

    bg_dir, fg_dir, _ = write_scene_inputs(tmp_path / "in")
    settings = dict(zip(small_args[1::2], small_args[2::2]))  # --demo, then flag-value pairs
    settings.update({"--shard-size": "1", "--rows": "6"})  # one shard per background; no --placements
    del settings["--placements"]
    args = [*(word for pair in settings.items() for word in pair), "--bg-dir", bg_dir, "--fg-dir", fg_dir,
            "--placement-mode", "ground", "--resolution", 64]
    one_core = {"preexec_fn": lambda: os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])}
    reference = Generation(tmp_path / "one", *args, **one_core)
    out = tmp_path / "tasks"
    n_bg = len(list(bg_dir.iterdir()))
    held = ShardName("backgrounds", "train", n_bg - 1, n_bg)
    others = [ShardName("backgrounds", "train", n, n_bg) for n in range(n_bg - 1)]
    store = OutputStore(out)
    try:
        with store.claim(held) as claimed:
            assert claimed
            task = Generation(out, *args, "--rank", 0, "--world-size", 2, **one_core)
            deadline = time.monotonic() + 240
            while not all(store.has_marker(name) for name in others) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2)
            assert task.process.poll() is None and not store.has_marker(held)  # it waits for the claim
        run_generate_together(task)
        assert store.has_marker(held)
        run_generate_together(Generation(out, *args, "--rank", 1, "--world-size", 2, **one_core))
        assert finish(out).returncode == 0
    finally:
        run_generate_together(reference)
    assert outputs(out) == outputs(tmp_path / "one")
    assert verify(out).ok
