"""End to end: the generator as a user runs it, read back with datasets.load_dataset as a user reads it."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image

from fgbg_depth import CONFIG_NAMES
from tests.conftest import (Generation, assert_reused, encoded, killed_after_first_shard, read_config, run_generate,
                            run_generate_together, run_verify, write_inputs)

PLACEMENTS = 3
COMMON = ["--depth-input-size", 56, "--placements", PLACEMENTS, "--shard-size", 10, "--batch-size", 4,
          "--resolution", 64]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    """The same job as 2 accelerate processes and as 1 plain process, side by side."""
    root = tmp_path_factory.mktemp("generate")
    bg_dir, fg_dir = write_inputs(root / "inputs", n_bg=2, n_fg=2)
    args = ["--bg-dir", bg_dir, "--fg-dir", fg_dir, "--depth-model", tiny_model, *COMMON]
    two, one = run_generate_together(Generation(root / "two", *args, processes=2, launcher="accelerate"),
                                     Generation(root / "one", *args))
    return {"root": root, "args": args, "two": root / "two", "one": root / "one", "two_log": two.stderr,
            "one_log": one.stderr}


def shard_columns(out, config_name, column):
    """Raw values of one column over a config's shards, in shard order."""
    return read_config(out, config_name).column(column).to_pylist()


def test_row_counts_and_columns(runs):
    n_samples = 2 * 2 * 2 * PLACEMENTS
    expected = {"default": n_samples, "backgrounds": 2, "foregrounds": 2}
    for name in CONFIG_NAMES:
        ds = datasets.load_dataset(str(runs["two"]), name, split="train")
        assert ds.num_rows == expected[name]
        streamed = list(datasets.load_dataset(str(runs["two"]), name, split="train", streaming=True))
        assert len(streamed) == expected[name]
    ds = datasets.load_dataset(str(runs["two"]), "default", split="train")
    assert sorted(ds["sample_id"]) == list(range(n_samples))
    row = ds[5]
    assert row["fg_bg"].mode == "RGB" and row["fg_bg"].size == (64, 64)
    assert row["mask"].mode == "L" and set(np.unique(np.asarray(row["mask"]))) <= {0, 255}
    assert row["depth"].mode == "I;16" and row["depth"].size == (64, 64)
    assert row["depth_min"] < row["depth_max"]
    assert (row["bg_id"], row["fg_id"], row["flip"]) == (0, 0, True)
    assert len(row["bbox"]) == 4
    assert "2 process(es)" in runs["two_log"] and "1 process(es)" in runs["one_log"]


def test_masks_equal_the_alpha_placed_at_the_recorded_position(runs):
    """Independent of builder.rows.composite: resize the stored cut-out's alpha with PIL and threshold it."""
    foregrounds = datasets.load_dataset(str(runs["two"]), "foregrounds", split="train")
    alphas = {row["fg_id"]: np.asarray(row["image"])[..., 3] for row in foregrounds}
    for row in datasets.load_dataset(str(runs["two"]), "default", split="train"):
        alpha = alphas[row["fg_id"]]
        if row["flip"]:
            alpha = alpha[:, ::-1]
        longer = max(1, round(row["scale"] * 64))
        h, w = alpha.shape
        size = (longer, max(1, round(h * longer / w))) if w >= h else (max(1, round(w * longer / h)), longer)
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(alpha)).resize(size, Image.Resampling.BILINEAR))
        expected = np.zeros((64, 64), np.uint8)
        expected[row["y"]:row["y"] + size[1], row["x"]:row["x"] + size[0]][resized >= 128] = 255
        assert np.array_equal(np.asarray(row["mask"]), expected), row["sample_id"]
        ys, xs = np.nonzero(expected)
        assert row["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert 0.3 <= row["scale"] <= 0.6


def test_stats_json_equals_a_recomputation_from_loaded_rows(runs):
    stats = json.loads((runs["two"] / "stats.json").read_text())
    kinds = {"fg_bg": ("default", "fg_bg", 255), "mask": ("default", "mask", 255),
             "depth": ("default", "depth", 65535), "bg": ("backgrounds", "image", 255),
             "bg_depth": ("backgrounds", "depth", 65535), "fg": ("foregrounds", "image", 255),
             "fg_mask": ("foregrounds", "mask", 255)}
    assert set(stats["kinds"]) == set(kinds)
    for kind, (config_name, column, peak) in kinds.items():
        ds = datasets.load_dataset(str(runs["two"]), config_name, split="train")
        pixels = [np.asarray(image, dtype=np.float64) / peak for image in ds[column]]
        flat = np.concatenate([p.reshape(-1, 1 if p.ndim == 2 else p.shape[2]) for p in pixels])
        raw = ds.cast_column(column, datasets.Image(decode=False))[column]
        entry = stats["kinds"][kind]
        assert entry["count"] == len(pixels)
        assert entry["encoded_bytes"] == sum(len(cell["bytes"]) for cell in raw)
        assert np.allclose(entry["mean"], flat.mean(axis=0), rtol=0, atol=1e-12), kind
        assert np.allclose(entry["std"], flat.std(axis=0), rtol=0, atol=1e-12), kind
    assert stats["rows"] == {"default": 24, "backgrounds": 2, "foregrounds": 2}


def test_one_and_two_processes_give_identical_composites_and_masks(runs):
    for config_name, column in [("default", "fg_bg"), ("default", "mask"), ("default", "sample_id"),
                                ("backgrounds", "image"), ("foregrounds", "image")]:
        assert shard_columns(runs["one"], config_name, column) == shard_columns(runs["two"], config_name, column)
    one, two = (json.loads((runs[k] / "stats.json").read_text())["kinds"] for k in ("one", "two"))
    assert one["fg_bg"] == two["fg_bg"] and one["mask"] == two["mask"]


def test_card_lists_configs_features_and_statistics(runs):
    import yaml

    text = (runs["two"] / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == list(CONFIG_NAMES)
    info = {i["config_name"]: i for i in header["dataset_info"]}
    assert info["default"]["splits"][0]["num_examples"] == 24
    assert "license" not in header  # a local random model: license unknown, the card says so
    assert "Set it before publishing" in text
    for kind in ("fg_bg", "mask", "depth", "bg", "fg"):
        assert (runs["two"] / "images" / f"{kind}.png").exists() and f"images/{kind}.png" in text
    for name in ("bg_00.jpg", "fg_01.png"):
        assert name in text
    assert "| fg_bg | 24 |" in text


def test_rerun_is_a_no_op_and_different_settings_are_refused(runs):
    before = {p: p.stat().st_mtime_ns for p in (runs["one"] / "data").rglob("*.arrow")}
    run_generate(runs["one"], *runs["args"])
    assert before == {p: p.stat().st_mtime_ns for p in (runs["one"] / "data").rglob("*.arrow")}
    refused = run_generate(runs["one"], *runs["args"], "--seed", 1, check=False)
    assert refused.returncode == 2 and "different settings" in refused.stderr and "--overwrite" in refused.stderr


def test_killed_run_resumes_to_the_same_dataset(runs, tmp_path):
    out = tmp_path / "killed"
    before = killed_after_first_shard(out, *runs["args"])
    rerun = run_generate(out, *runs["args"])
    assert_reused(out, before, rerun.stderr)
    for config_name in CONFIG_NAMES:
        for column in ("fg_bg", "mask", "depth") if config_name == "default" else ("image",):
            assert shard_columns(out, config_name, column) == shard_columns(runs["one"], config_name, column)
    resumed, fresh = (json.loads((p / "stats.json").read_text()) for p in (out, runs["one"]))
    assert resumed["kinds"] == fresh["kinds"]


def test_invalid_inputs_exit_2_and_name_every_bad_file(tmp_path, tiny_model):
    bg_dir, fg_dir = write_inputs(tmp_path / "inputs", n_bg=1, n_fg=1)
    good_jpeg = (bg_dir / "bg_00.jpg").read_bytes()
    (bg_dir / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
    (bg_dir / "notes.txt").write_text("not an image")
    (fg_dir / "opaque.png").write_bytes(encoded(Image.new("RGB", (20, 20), (9, 9, 9)), "PNG"))
    (fg_dir / "empty.png").write_bytes(encoded(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG"))
    out = tmp_path / "out"
    result = run_generate(out, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--depth-model", tiny_model, check=False)
    assert result.returncode == 2, result.stderr
    for name in ("truncated.jpg", "opaque.png", "empty.png"):
        assert name in result.stderr
    assert "RGBA PNG" in result.stderr and "fully transparent" in result.stderr
    assert "notes.txt" in result.stderr and "skipped" in result.stderr
    assert not out.exists()
    launched = run_generate(out, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--no-depth", processes=2,
                            launcher="accelerate", check=False)
    assert launched.returncode != 0 and "truncated.jpg" in launched.stderr and not out.exists()


def test_missing_model_fails_before_any_work_with_a_fix(tmp_path, inputs):
    out = tmp_path / "out"
    result = run_generate(out, "--bg-dir", inputs[0], "--fg-dir", inputs[1], "--depth-model",
                          tmp_path / "no-such-model", check=False)
    assert result.returncode == 2
    assert "could not be loaded" in result.stderr and "--no-depth" in result.stderr
    assert not out.exists()


def test_bad_settings_exit_2(tmp_path, inputs):
    result = run_generate(tmp_path / "o", "--bg-dir", inputs[0], "--fg-dir", inputs[1], "--placements", 0,
                          "--scale-min", 0.7, "--scale-max", 0.5, check=False)
    assert result.returncode == 2
    assert "--placements 0" in result.stderr and "scale-min <= scale-max" in result.stderr


def test_demo_without_depth_and_overwrite(tmp_path):
    out = tmp_path / "demo"
    run_generate(out, "--demo", "--no-depth", "--placements", 2)
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 4 * 3 * 2 * 2 and "depth" not in ds.column_names
    refused = run_generate(out, "--demo", "--no-depth", "--placements", 3, check=False)
    assert refused.returncode == 2
    run_generate(out, "--demo", "--no-depth", "--placements", 3, "--overwrite")
    assert datasets.load_dataset(str(out), split="train").num_rows == 4 * 3 * 2 * 3
    assert len(list((out / "data" / "default").glob("*.arrow"))) == 1


def test_output_dir_with_foreign_files_is_refused(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    result = run_generate(out, "--demo", "--no-depth", check=False)
    assert result.returncode == 2 and "other files" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_python_builder_and_background_join(tmp_path, inputs):
    import fgbg_depth

    kwargs = {"bg_dir": str(inputs[0]), "fg_dir": str(inputs[1]), "no_depth": True, "placements": 2,
              "resolution": 64}
    builder = fgbg_depth.FgBgDepth(config_name="default", cache_dir=str(tmp_path / "cache"), generate_kwargs=kwargs)
    builder.download_and_prepare()
    local = builder.as_dataset(split="train")
    assert local.num_rows == 2 * 2 * 2 * 2 and "depth" not in local.column_names
    out = tmp_path / "out"
    run_generate(out, "--bg-dir", inputs[0], "--fg-dir", inputs[1], "--no-depth", "--placements", 2,
                 "--resolution", 64)
    generated = datasets.load_dataset(str(out), split="train")
    assert [np.asarray(r["mask"]).tobytes() for r in local] == [np.asarray(r["mask"]).tobytes() for r in generated]
    backgrounds = [np.asarray(row["image"]) for row in datasets.load_dataset(str(out), "backgrounds", split="train")]
    assert not np.array_equal(*backgrounds)  # else a join on the wrong background could not be seen
    for streaming in (False, True):
        joined = list(fgbg_depth.load_with_background(str(out), streaming=streaming))
        assert [row["sample_id"] for row in joined] == generated["sample_id"]
        assert {row["bg_id"] for row in joined} == {0, 1}
        for row in joined:
            assert row["bg"].size == (64, 64) and row["bg"].mode == "RGB"
            assert np.array_equal(np.asarray(row["bg"]), backgrounds[row["bg_id"]]), (streaming, row["sample_id"])


def test_python_builder_spreads_shards_over_num_proc(tmp_path, inputs):
    """`_split_generators` hands the generator's shard tasks to datasets as gen_kwargs, so num_proc works."""
    import fgbg_depth

    kwargs = {"bg_dir": str(inputs[0]), "fg_dir": str(inputs[1]), "no_depth": True, "placements": 2,
              "resolution": 64, "shard_size": 3}
    built = {}
    for num_proc in (None, 2):
        builder = fgbg_depth.FgBgDepth(config_name="default", cache_dir=str(tmp_path / f"cache{num_proc}"),
                                       generate_kwargs=kwargs)
        builder.download_and_prepare(num_proc=num_proc)
        ds = builder.as_dataset(split="train")
        built[num_proc] = {row["sample_id"]: (np.asarray(row["fg_bg"]).tobytes(), np.asarray(row["mask"]).tobytes())
                           for row in ds}
        if num_proc:
            assert len(ds.cache_files) == 2  # one Arrow file per worker: the shards really were spread
    assert sorted(built[None]) == list(range(16)) and built[2] == built[None]


def test_depth_bits_8_writes_an_8bit_png_that_verifies(tmp_path, small_args, reference_dataset):
    """--depth-bits 8: PNG L maps (each the 16-bit map rounded to 0..255), card and statistics follow, verify
    passes, and the training loader scales by 255."""
    sixteen, eight = reference_dataset, tmp_path / "8"  # the shared run is this one's 16-bit twin
    run_generate(eight, *small_args, "--depth-bits", 8)
    wide = datasets.load_dataset(str(sixteen), split="train")
    narrow = datasets.load_dataset(str(eight), split="train")
    for a, b in zip(wide, narrow, strict=True):
        assert b["depth"].mode == "L" and (a["depth_min"], a["depth_max"]) == (b["depth_min"], b["depth_max"])
        levels = np.asarray(a["depth"]).astype(np.int64) * 255 / 65535
        assert np.abs(np.asarray(b["depth"]) - levels).max() <= 0.5 + 1e-9
    assert run_verify(eight).returncode == 0
    stats = json.loads((eight / "stats.json").read_text())["kinds"]["depth"]
    assert stats["max_value"] == 255 and stats["encoded_bytes"] < json.loads(
        (sixteen / "stats.json").read_text())["kinds"]["depth"]["encoded_bytes"]
    assert "0..255 in an 8-bit PNG" in (eight / "README.md").read_text()
    assert json.loads((eight / "manifest.json").read_text())["settings"]["depth_bits"] == 8
    assert "depth_bits" not in json.loads((sixteen / "manifest.json").read_text())["settings"]
    from fgbg_depth import torch_dataset

    row = next(iter(torch_dataset(str(eight), depth="unit")))
    stored = np.asarray(narrow.filter(lambda r: r["sample_id"] == row["sample_id"])[0]["depth"]) / 255
    assert np.allclose(row["depth"][0].numpy(), stored, atol=1e-6)
