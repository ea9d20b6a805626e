"""Splits without leakage: held-out backgrounds and cut-outs never reach train, in any config."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest

from builder.contract.plan import SampleSpace, SplitPlan, held_out
from builder.verify.runner import verify
from fgbg_depth import CONFIG_NAMES, load_with_background
from tests.conftest import Generation, read_config, run_generate, run_generate_together, run_verify
from tests.fake_hub import FakeHub
from tests.test_hub import REPO, TOKEN, push

ARGS = ["--demo", "--no-depth", "--placements", 2, "--shard-size", 5, "--resolution", 64]
HOLD = ["--validation-backgrounds", 1, "--validation-foregrounds", 1]
K = 2  # placements


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    run_generate_together(Generation(root / "plain", *ARGS), Generation(root / "split", *ARGS, *HOLD),
                          Generation(root / "split2", *ARGS, *HOLD, processes=2))
    return root


def held(out) -> tuple[set, set]:
    manifest = json.loads((out / "manifest.json").read_text())
    names = {role: [f["name"] for f in manifest["inputs"][role]] for role in ("backgrounds", "foregrounds")}
    return ({names["backgrounds"].index(n) for n in manifest["held_out"]["backgrounds"]},
            {names["foregrounds"].index(n) for n in manifest["held_out"]["foregrounds"]})


def test_membership_by_hand():
    space = SampleSpace(3, 2, 1)
    only_bg = SplitPlan(space, frozenset({1}))
    assert only_bg.splits == ("train", "validation")
    assert [only_bg.split_of(b, f) for b in range(3) for f in range(2)] == \
        ["train", "train", "validation", "validation", "train", "train"]
    both = SplitPlan(space, frozenset({1}), frozenset({0}))
    assert [both.split_of(b, f) for b in range(3) for f in range(2)] == \
        [None, "train", "validation", None, None, "train"]
    assert list(both.samples("train")) == [2, 3, 10, 11] and list(both.samples("validation")) == [4, 5]
    assert both.backgrounds("validation") == (1,) and both.foregrounds("train") == (1,) and both.dropped == 6
    nothing = SplitPlan(space)
    assert nothing.splits == ("train",) and list(nothing.samples("train")) == list(range(12))
    with pytest.raises(ValueError, match="no split 'validation'"):
        nothing.samples("validation")


def test_two_derivations_of_membership_agree_and_held_out_is_seeded():
    space = SampleSpace(7, 5, 3)
    plan = SplitPlan.from_counts(space, seed=4, validation_backgrounds=2, validation_foregrounds=3)
    for split in plan.splits:
        for i in plan.samples(split):
            assert plan.split_of(*space.decompose(i)[:2]) == split
    assert sum(len(plan.samples(s)) for s in plan.splits) + plan.dropped == len(space)
    assert held_out(4, 7, 2, 0) != held_out(5, 7, 2, 0) or held_out(4, 7, 2, 0) != held_out(6, 7, 2, 0)
    assert held_out(4, 7, 2, 0) == plan.held_bg and len(plan.held_fg) == 3


def test_the_classic_recipe_with_ten_and_ten_held_out():
    plan = SplitPlan.from_counts(SampleSpace(100, 100, 20), 0, 10, 10)
    assert (len(plan.samples("train")), len(plan.samples("validation")), plan.dropped) == (324_000, 4_000, 72_000)


def test_row_counts_per_split_and_no_leakage_in_any_config(runs):
    out = runs / "split"
    bv, fv = held(out)
    assert len(bv) == 1 and len(fv) == 1
    expected = {("default", "train"): 3 * 2 * 2 * K, ("default", "validation"): 1 * 1 * 2 * K,
                ("backgrounds", "train"): 3, ("backgrounds", "validation"): 1,
                ("foregrounds", "train"): 2, ("foregrounds", "validation"): 1}
    for (config, split), rows in expected.items():
        for streaming in (False, True):
            ds = list(datasets.load_dataset(str(out), config, split=split, streaming=streaming))
            assert len(ds) == rows, (config, split, streaming)
        bg_ids, fg_ids = {r["bg_id"] for r in ds if "bg_id" in r}, {r["fg_id"] for r in ds if "fg_id" in r}
        if split == "train":
            assert not bg_ids & bv and not fg_ids & fv, config
        else:
            assert bg_ids <= bv and fg_ids <= fv, config
    report = verify(out)
    assert report.ok, "\n".join(report.problems)


@pytest.mark.parametrize("hold,counts", [
    # only backgrounds held out (1 of 4): validation = Bv x every cut-out; every cut-out on both sides
    (["--validation-backgrounds", 1], {("default", "train"): 3 * 3 * 2 * K, ("default", "validation"): 1 * 3 * 2 * K,
                                       ("backgrounds", "train"): 3, ("backgrounds", "validation"): 1,
                                       ("foregrounds", "train"): 3, ("foregrounds", "validation"): 3}),
    # only cut-outs held out (1 of 3): validation = every background x Fv
    (["--validation-foregrounds", 1], {("default", "train"): 4 * 2 * 2 * K, ("default", "validation"): 4 * 1 * 2 * K,
                                       ("backgrounds", "train"): 4, ("backgrounds", "validation"): 4,
                                       ("foregrounds", "train"): 2, ("foregrounds", "validation"): 1}),
])
def test_one_side_held_out_end_to_end(tmp_path, hold, counts):
    """The README's rule with one side held out (4 demo backgrounds, 3 cut-outs): a sample is in train when
    neither input is held out, in validation when its input of the held-out side is, never dropped."""
    out = tmp_path / "out"
    run_generate(out, *ARGS, *hold)
    bv, fv = held(out)
    for (config, split), rows in counts.items():
        ds = list(datasets.load_dataset(str(out), config, split=split))
        assert len(ds) == rows, (config, split)
        for row in ds:
            in_bv, in_fv = row.get("bg_id") in bv, row.get("fg_id") in fv
            assert (in_bv or in_fv) == (split == "validation") or config != "default", row["sample_id"]
            assert not ((in_bv and split == "train") or (in_fv and split == "train")), (config, row)
    ids = sorted(r["sample_id"] for split in ("train", "validation")
                 for r in datasets.load_dataset(str(out), "default", split=split))
    assert ids == list(range(4 * 3 * 2 * K))  # nothing dropped, nothing twice
    report = verify(out)
    assert report.ok, "\n".join(report.problems)


def test_a_sample_has_the_same_bytes_with_and_without_splits(runs):
    plain = {row["sample_id"]: row for row in read_config(runs / "plain", "default").to_pylist()}
    for out in (runs / "split", runs / "split2"):
        rows = read_config(out, "default").to_pylist()
        assert len(rows) == 28
        for row in rows:
            assert row == plain[row["sample_id"]]


def test_two_processes_give_the_same_shards(runs):
    for path in sorted((runs / "split" / "data").rglob("*.arrow")):
        assert (runs / "split2" / path.relative_to(runs / "split")).read_bytes() == path.read_bytes()
    assert (runs / "split2" / "stats.json").read_bytes() == (runs / "split" / "stats.json").read_bytes()


# statistics kind -> (config, column) whose decoded images it summarises
KIND_COLUMNS = {"fg_bg": ("default", "fg_bg"), "mask": ("default", "mask"), "bg": ("backgrounds", "image"),
                "fg": ("foregrounds", "image"), "fg_mask": ("foregrounds", "mask")}


def test_statistics_per_split_equal_a_recomputation(runs):
    out = runs / "split"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["normalize_with"] == "train"
    for split in ("train", "validation"):
        part = stats["splits"][split]
        assert set(part["kinds"]) == set(KIND_COLUMNS)
        for kind, (config, column) in KIND_COLUMNS.items():
            ds = datasets.load_dataset(str(out), config, split=split)
            arrays = [np.asarray(im, dtype=np.float64) / 255 for im in ds[column]]
            pixels = np.concatenate([a.reshape(-1, a.shape[2] if a.ndim == 3 else 1) for a in arrays])
            assert part["rows"][config] == ds.num_rows == part["kinds"][kind]["count"], (split, kind)
            assert np.allclose(part["kinds"][kind]["mean"], pixels.mean(axis=0), rtol=0, atol=1e-12), (split, kind)
            assert np.allclose(part["kinds"][kind]["std"], pixels.std(axis=0), rtol=0, atol=1e-12), (split, kind)
    card = (out / "README.md").read_text()
    assert "## Splits" in card and "(normalise with these mean and std)" in card and "Dropped pairs: 20" in card
    header = card.split("---")[1]
    assert "name: validation" in header and "num_examples: 4" in header


def test_a_shard_moved_into_the_wrong_split_fails(runs, tmp_path):
    out = tmp_path / "moved"
    shutil.copytree(runs / "split", out)
    (out / "data/default/validation-00000-of-00001.arrow").rename(out / "data/default/train-00005-of-00006.arrow")
    text = "\n".join(verify(out, sample=1).problems)
    assert "belongs to split 'validation', not 'train'" in text
    assert "no shards of split 'validation'" in text


def test_changed_split_settings_are_refused_and_bad_counts_exit_2(runs, tmp_path):
    refused = run_generate(runs / "split", *ARGS, "--validation-backgrounds", 2, check=False)
    assert refused.returncode == 2 and "made with different held_out, settings" in refused.stderr
    too_many = run_generate(tmp_path / "o", *ARGS, "--validation-backgrounds", 4, "--validation-foregrounds", 3,
                            check=False)
    assert too_many.returncode == 2 and not (tmp_path / "o").exists()
    assert "--validation-backgrounds 4 leaves no backgrounds for train" in too_many.stderr
    assert "--validation-foregrounds 3 leaves no cut-outs for train" in too_many.stderr
    negative = run_generate(tmp_path / "o", *ARGS, "--validation-foregrounds", -1, check=False)
    assert negative.returncode == 2 and "use 0 or more" in negative.stderr


def test_background_join_and_python_builder_stay_within_the_split(runs, tmp_path):
    out = runs / "split"
    bv, _ = held(out)
    joined = list(load_with_background(str(out), split="validation", streaming=True))
    backgrounds = {r["bg_id"]: np.asarray(r["image"]) for r in datasets.load_dataset(str(out), "backgrounds",
                                                                                        split="validation")}
    assert len(joined) == 4 and {r["bg_id"] for r in joined} == bv
    for row in joined:
        assert np.array_equal(np.asarray(row["bg"]), backgrounds[row["bg_id"]])
    import fgbg_depth

    kwargs = {"demo": True, "no_depth": True, "placements": K, "resolution": 64, "validation_backgrounds": 1,
              "validation_foregrounds": 1}
    builder = fgbg_depth.FgBgDepth(config_name="default", cache_dir=str(tmp_path / "cache"), generate_kwargs=kwargs)
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert {name: ds.num_rows for name, ds in built.items()} == {"train": 24, "validation": 4}
    assert sorted(built["validation"]["sample_id"]) == sorted(
        datasets.load_dataset(str(out), "default", split="validation")["sample_id"])


def test_export_and_push_carry_both_splits(runs, tmp_path):
    out, export = runs / "split", tmp_path / "export"
    done = push(out, "--export-only", export, "--license", "cc-by-4.0", hub=None, home=tmp_path / "home", token=None)
    assert done.returncode == 0, done.stderr
    for config in CONFIG_NAMES:
        assert sorted(p.name.split("-")[0] for p in (export / "data" / config).glob("*.parquet")) == \
            ["train", "validation"]
    assert run_verify(export).returncode == 0
    with FakeHub(TOKEN) as hub:
        pushed = push(out, "--license", "cc-by-4.0", hub=hub, home=tmp_path / "home")
        assert pushed.returncode == 0, pushed.stderr
        received = hub.materialize(REPO, tmp_path / "received")
    for config in CONFIG_NAMES:
        arrow = datasets.load_dataset(str(out), config, split="validation", streaming=True)
        hub_rows = datasets.load_dataset(str(received), config, split="validation", streaming=True)
        for a, b in zip(arrow, hub_rows, strict=True):
            assert {k: np.asarray(v).tobytes() if hasattr(v, "mode") else v for k, v in a.items()} == \
                {k: np.asarray(v).tobytes() if hasattr(v, "mode") else v for k, v in b.items()}
