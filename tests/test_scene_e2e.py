"""`--objects` end to end: one object keeps today's bytes, several objects with and without ground placement and
with `--augment realistic`, by 1 and 2 processes, split purity of every object, verify, usage errors and the Parquet
export streamed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from builder.contract.schema import OBJECT_AUGMENT_FIELDS
from builder.rows.composite import mask_bbox
from builder.train.loader import torch_dataset
from builder.verify.runner import verify
from tests.conftest import (ROOT, Generation, read_config, run_generate, run_generate_together, write_inputs,
                            write_tampered_copy)
from tests.test_golden import BASE, GOLDEN, RUNS, full_hashes

R = 64
SMALL = ["--demo", "--no-depth", "--placements", "2", "--resolution", str(R), "--shard-size", "20"]
MODES = ("uniform", "ground")
RUN_ARGS = {"uniform": ["--placement-mode", "uniform"], "ground": ["--placement-mode", "ground"],
            "realistic": ["--placement-mode", "ground", "--augment", "realistic"]}


@pytest.fixture(scope="module")
def scene_runs(tmp_path_factory) -> dict[tuple[str, int], object]:
    """`--objects 2-3` on the demo, in both placement modes and augmented in ground mode, by 1 and 2 processes."""
    base = tmp_path_factory.mktemp("scenes")
    outs = {(name, processes): base / f"{name}-{processes}" for name in RUN_ARGS for processes in (1, 2)}
    run_generate_together(*(Generation(out, *SMALL, "--objects", "2-3", *RUN_ARGS[name], processes=processes)
                            for (name, processes), out in outs.items()))
    return outs


def pixels(cell) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def test_one_object_keeps_the_bytes(tmp_path):
    """`--objects 1` writes exactly the bytes of the golden runs made without the flag (tests/golden), in uniform
    and in ground mode: shards, stats.json, grids, done markers, manifest."""
    for name in ("default", "ground"):
        out = tmp_path / name
        run_generate(out, *BASE, *RUNS[name][0], "--objects", "1")
        assert full_hashes(out) == json.loads((GOLDEN / f"{name}.json").read_text())["sha256"], name


def test_same_bytes_with_1_and_2_processes(scene_runs):
    for name in RUN_ARGS:
        one, two = scene_runs[name, 1], scene_runs[name, 2]
        files = [{f.relative_to(out).as_posix(): f.read_bytes() for f in sorted((out / "data").rglob("*.arrow"))}
                 for out in (one, two)]
        assert files[0] and files[0] == files[1]
        assert (one / "stats.json").read_bytes() == (two / "stats.json").read_bytes()


@pytest.mark.parametrize("mode", MODES)
def test_instance_mask_union_and_objects(scene_runs, mode):
    samples = read_config(scene_runs[mode, 1], "default").to_pylist()
    counts = [len(row["objects"]) for row in samples]
    assert set(counts) == {2, 3} and all(2 <= n + row["objects_dropped"] <= 3 for n, row in zip(counts, samples))
    for row in samples:
        instances, mask = pixels(row["instance_mask"]), pixels(row["mask"])
        assert np.array_equal(mask, np.where(instances > 0, 255, 0))
        first = row["objects"][0]
        assert (first["fg_id"], first["flip"], first["x"], first["y"], first["scale"]) == \
            (row["fg_id"], row["flip"], row["x"], row["y"], row["scale"])
        assert len({o["fg_id"] for o in row["objects"]}) == len(row["objects"])
        for k, obj in enumerate(row["objects"], start=1):
            assert obj["bbox"] == mask_bbox(instances == k) and (instances == k).any()
            assert ("foot_x" in obj) == (mode == "ground")
        assert row["bbox"] == row["objects"][0]["bbox"]
    if mode == "ground":  # nearer objects hide farther ones: some object is partly covered
        assert any(obj["occlusion"] > 0 for row in samples for obj in row["objects"][1:])


def test_verify_passes_and_names_an_altered_object(scene_runs, tmp_path):
    for name in RUN_ARGS:
        assert verify(scene_runs[name, 2]).ok
    table = read_config(scene_runs["ground", 1], "default")
    samples = table.to_pylist()
    samples[4]["objects"][1]["x"] += 1
    samples[6]["objects"][-1]["fg_id"] = samples[6]["fg_id"]
    samples[8]["instance_mask"] = samples[9]["instance_mask"]
    out = write_tampered_copy(scene_runs["ground", 1], tmp_path / "tampered", samples, table.schema)
    problems = "\n".join(verify(out).problems)
    assert "sample_id 4: object 2: x = " in problems
    assert "sample_id 6: object " in problems and "fg_id" in problems
    assert "sample_id 8: instance_mask differs" in problems


def test_augmented_objects_carry_their_parameters_and_alpha_covers_every_object(scene_runs):
    """`--augment realistic`: each entry of `objects` holds its cut-out's parameters (object 1's are the row's),
    one background perturbation per row, and `alpha` reaches the threshold on every object's visible pixels."""
    samples = read_config(scene_runs["realistic", 1], "default").to_pylist()
    angles = set()
    for row in samples:
        first = row["objects"][0]
        assert all(first[name] == row[name] for name, _ in OBJECT_AUGMENT_FIELDS)
        angles.update(obj["fg_angle"] for obj in row["objects"][1:])
        instances, mask, alpha = pixels(row["instance_mask"]), pixels(row["mask"]), pixels(row["alpha"])
        assert np.array_equal(mask, np.where(instances > 0, 255, 0))
        assert (alpha[instances > 0] >= 128).all() and not mask[alpha == 0].any()
        for k, obj in enumerate(row["objects"], start=1):
            assert obj["bbox"] == mask_bbox(instances == k) and (instances == k).any()
    assert len(angles) > len(samples)  # further objects draw their own rotation, not object 1's
    card = (scene_runs["realistic", 1] / "README.md").read_text()
    assert "alphas, less what scenery hides, composed back to front" in card and "final placed alpha" not in card


def test_verify_names_an_altered_augmented_object(scene_runs, tmp_path):
    table = read_config(scene_runs["realistic", 1], "default")
    samples = table.to_pylist()
    samples[3]["objects"][1]["fg_angle"] += 5.0
    samples[5]["alpha"] = samples[7]["alpha"]
    out = write_tampered_copy(scene_runs["realistic", 1], tmp_path / "tampered", samples, table.schema)
    problems = "\n".join(verify(out).problems)
    assert "sample_id 3: object 2: fg_angle = " in problems
    assert "sample_id 5: alpha differs" in problems


def test_every_object_stays_in_its_split(tmp_path):
    bg_dir, fg_dir = write_inputs(tmp_path / "in", n_bg=2, n_fg=5)
    out = tmp_path / "out"
    run_generate(out, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--no-depth", "--placements", "2", "--resolution",
                 str(R), "--objects", "2", "--validation-foregrounds", "2")
    assert verify(out).ok
    fg_names = {r["fg_id"]: r["source"] for r in read_config(out, "foregrounds").to_pylist()}
    held = set(json.loads((out / "manifest.json").read_text())["held_out"]["foregrounds"])
    for split in ("train", "validation"):
        loaded = datasets.load_dataset(str(out), "default", split=split)
        ids = {obj["fg_id"] for objects in loaded["objects"] for obj in objects}
        assert ids and all((fg_names[i] in held) == (split == "validation") for i in ids)


@pytest.mark.parametrize("objects, says", [("0", "use 1 or more"), ("3-2", "write it as 2-3"),
                                           ("256", "at most 255"), ("4", "use at most 3 objects")])
def test_bad_objects_exit_2_with_the_fix(tmp_path, objects, says):
    done = run_generate(tmp_path / "out", "--demo", "--no-depth", "--objects", *objects.split(), check=False)
    assert done.returncode == 2 and says in done.stderr


def test_parquet_export_streams_the_objects_list(scene_runs, tmp_path):
    export = tmp_path / "export"
    push = [sys.executable, str(ROOT / "scripts" / "push_to_hub.py"), str(scene_runs["ground", 1]), "someone/scenes",
            "--export-only", str(export), "--license", "apache-2.0"]
    done = subprocess.run(push, capture_output=True, text=True, env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((export / "data" / "default").glob("*.parquet"))
    streamed = datasets.load_dataset(str(export), "default", split="train", streaming=True)
    row = next(iter(streamed))
    assert 2 <= len(row["objects"]) <= 3 and {"fg_id", "bbox", "occlusion", "foot_x"} <= set(row["objects"][0])
    assert isinstance(streamed.features["objects"], datasets.List)
    assert verify(export).ok


def viewer_problems(feature, where: str) -> list[str]:
    """The Hub dataset viewer's rules for a feature (huggingface/dataset-viewer, libcommon/viewer_utils/features.py:
    every type is shown but `Value("binary")`; its Parquet conversion cannot write a struct with no field)."""
    if isinstance(feature, dict):
        problems = [] if feature else [f"{where}: a struct with no field"]
        return problems + [p for key, sub in feature.items() for p in viewer_problems(sub, f"{where}.{key}")]
    if isinstance(feature, datasets.List):
        return viewer_problems(feature.feature, f"{where}[]")
    if isinstance(feature, datasets.Value) and feature.dtype == "binary":
        return [f"{where}: binary"]
    return [] if isinstance(feature, (datasets.Value, datasets.Image)) else [f"{where}: {type(feature).__name__}"]


def test_objects_follow_the_hub_viewers_rules(scene_runs):
    """The card's features (what the viewer reads) hold only types the viewer shows, and every `objects` cell is a
    non-empty list of structs with exactly the card's fields."""
    for name in RUN_ARGS:
        out = scene_runs[name, 1]
        features = datasets.load_dataset_builder(str(out), "default").info.features
        assert isinstance(features["objects"], datasets.List) and features["objects"].feature
        assert [p for column, f in features.items() for p in viewer_problems(f, column)] == []
        fields = set(features["objects"].feature)
        assert all(row["objects"] and all(set(obj) == fields for obj in row["objects"])
                   for row in read_config(out, "default").to_pylist())


def test_card_counts_objects_and_loader_gives_integer_instances(scene_runs):
    out = scene_runs["ground", 1]
    samples = read_config(out, "default").to_pylist()
    counts = json.loads((out / "stats.json").read_text())["objects"]
    assert counts["objects"] == sum(len(row["objects"]) for row in samples)
    assert sum(counts["rows_by_objects"].values()) == len(samples)
    assert (counts["redrawn"], counts["dropped"]) == (sum(r["objects_redrawn"] for r in samples),
                                                      sum(r["objects_dropped"] for r in samples))
    visible = np.mean([1 - np.float64(o["occlusion"]) for row in samples for o in row["objects"]])
    assert counts["mean_visible"] == pytest.approx(visible, abs=1e-6)
    assert "rows by number of objects" in (out / "README.md").read_text()
    grid = np.asarray(Image.open(out / "images" / "instances.png"))
    assert len({tuple(p) for p in grid.reshape(-1, 3)[::7]}) > 10  # composites beside masks in colour
    first = next(iter(torch_dataset(out, columns=("instance_mask", "sample_id"))))
    assert first["instance_mask"].dtype == torch.int64 and first["instance_mask"].shape == (1, R, R)
    stored = next(r for r in samples if r["sample_id"] == first["sample_id"])
    assert np.array_equal(first["instance_mask"][0].numpy(), pixels(stored["instance_mask"]))


def test_depth_is_estimated_on_the_final_composite(tmp_path, small_args):
    """The tiny random model: its depth of every stored composite (several objects) re-run by verify."""
    out = tmp_path / "out"
    run_generate(out, *small_args, "--resolution", str(R), "--objects", "2-3")
    assert verify(out, depth_rows=3).ok
