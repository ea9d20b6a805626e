"""`--placement-mode ground` end to end: the demo's scenes with exact depth, the tiny random model's stored depth,
verify, the loader, and uniform mode's bytes (the same maps as a --bg-depth-dir: tests/test_given_depth.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
from PIL import Image

from builder.rows.bg_depth import decode_depth_map, demo_depth_files, fit_depth
from builder.rows.demo import DEMO_BACKGROUNDS, demo_files, demo_ground_files, ground_scene
from builder.rows.geometry import BackgroundGround, nearer_scenery
from builder.train.loader import torch_dataset
from builder.verify.runner import verify
from tests.conftest import ROOT, Generation, read_config, run_generate, run_generate_together, write_tampered_copy

R = 64
GROUND = ["--placement-mode", "ground", "--placements", "3", "--resolution", str(R), "--shard-size", "25"]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> dict[int, object]:
    """The demo in ground mode without any model, by 1, 2 and 3 processes, side by side."""
    base = tmp_path_factory.mktemp("ground-demo")
    outs = {processes: base / f"p{processes}" for processes in (1, 2, 3)}
    run_generate_together(*[Generation(out, "--demo", "--no-depth", *GROUND, processes=processes)
                            for processes, out in outs.items()])
    return outs


def rows(out) -> list[dict]:
    return read_config(out, "default").to_pylist()


def pixels(cell) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def demo_maps() -> list[np.ndarray]:
    return [decode_depth_map(f, None, "disparity", R) for f in demo_depth_files()]


def test_same_bytes_with_1_2_3_processes(demo_runs):
    files = {p: {f.relative_to(out).as_posix(): f.read_bytes() for f in sorted((out / "data").rglob("*.arrow"))}
             for p, out in demo_runs.items()}
    assert files[1] and files[1] == files[2] == files[3]
    stats = {p: json.loads((out / "stats.json").read_text()) for p, out in demo_runs.items()}
    assert stats[1] == stats[2] == stats[3]


def test_feet_stand_on_the_open_floor(demo_runs):
    # the scenes' true floor, sampled exactly as their maps are
    floors = [fit_depth(ground_scene(i)[2].astype(np.float32), None, R) > 0.5 for i in range(DEMO_BACKGROUNDS)]
    samples = rows(demo_runs[1])
    assert all(row["placement_mode"] == "ground" for row in samples)
    assert all(floors[row["bg_id"]][row["foot_y"], row["foot_x"]] for row in samples)
    for row in samples:  # the cut-out stands on its foot: its lowest pixels are in the foot's row or just above
        x0, _, x1, y1 = row["amodal_bbox"]
        assert x0 <= row["foot_x"] < x1 and 0 <= row["foot_y"] - (y1 - 1) <= 2


def test_scale_rises_with_the_foot_disparity(demo_runs):
    maps = demo_maps()
    for bg in range(DEMO_BACKGROUNDS):
        pairs = sorted((maps[bg][r["foot_y"], r["foot_x"]], r["scale"]) for r in rows(demo_runs[1]) if r["bg_id"] == bg)
        assert len(pairs) > 3
        assert all(a[1] <= b[1] for a, b in zip(pairs, pairs[1:]))
        assert pairs[0][1] < pairs[-1][1]


def test_occlusion_exactly_where_nearer_scenery_is(demo_runs):
    maps, occluded = demo_maps(), 0
    for row in rows(demo_runs[1]):
        mask, amodal = pixels(row["mask"]) > 0, pixels(row["amodal_mask"]) > 0
        assert not (mask & ~amodal).any()  # mask within amodal
        ground = BackgroundGround.of(maps[row["bg_id"]])
        foot = maps[row["bg_id"]][row["foot_y"], row["foot_x"]]
        hidden_pixels = amodal & ~mask
        assert (maps[row["bg_id"]][hidden_pixels] > foot + ground.margin).all()
        assert not (maps[row["bg_id"]][mask] > foot + ground.margin).any()
        assert row["occlusion"] == np.float32(1 - mask.sum() / amodal.sum())
        occluded += bool(hidden_pixels.any())
    assert occluded >= 5  # the demo's blocks do hide cut-outs


def test_verify_passes_and_names_altered_rows(demo_runs, tmp_path):
    assert verify(demo_runs[2]).ok
    table = read_config(demo_runs[1], "default")
    samples = table.to_pylist()
    altered = {3: ("foot_x", samples[3]["foot_x"] + 1), 5: ("scale", samples[5]["scale"] * 1.1)}
    flipped = pixels(samples[7]["mask"]).copy()
    flipped[samples[7]["foot_y"] - 1, samples[7]["foot_x"]] ^= 255
    buffer = io.BytesIO()
    Image.fromarray(flipped).save(buffer, format="PNG")
    altered[9] = ("occlusion", samples[9]["occlusion"] + 0.01)
    for n, (column, value) in altered.items():
        samples[n][column] = value
    samples[7]["mask"] = {"bytes": buffer.getvalue(), "path": None}
    samples[11]["amodal_mask"] = samples[12]["amodal_mask"]
    out = write_tampered_copy(demo_runs[1], tmp_path / "tampered", samples, table.schema)
    problems = "\n".join(verify(out).problems)
    assert "sample_id 3: (foot_x, foot_y, placement_mode)" in problems
    assert "sample_id 5: (x, y, scale)" in problems and "sample_id 5: scale" in problems
    assert "sample_id 7: mask differs in 1 pixels" in problems
    assert "sample_id 9: occlusion" in problems and "sample_id 11: amodal_mask differs" in problems


def test_loader_gives_amodal_mask_and_occlusion(demo_runs):
    first = next(iter(torch_dataset(demo_runs[1])))
    assert first["amodal_mask"].shape == (1, R, R) and first["occlusion"].dtype.is_floating_point
    loaded = datasets.load_dataset(str(demo_runs[1]), "default", split="train")
    assert {"amodal_mask", "occlusion", "foot_x", "foot_y", "amodal_bbox", "placement_mode"} <= set(loaded.features)
    stats = json.loads((demo_runs[1] / "stats.json").read_text())
    assert stats["placement"]["ground"] == loaded.num_rows and "amodal_mask" in stats["kinds"]
    assert "placement-mode ground" in (demo_runs[1] / "README.md").read_text()
    assert (demo_runs[1] / "images" / "occlusion.png").is_file()


def write_scene_inputs(root):
    """The demo's ground scenes as --bg-dir, their maps as --bg-depth-dir (.npy)."""
    bg_dir, fg_dir, depth_dir = root / "bg", root / "fg", root / "depth"
    for folder in (bg_dir, fg_dir, depth_dir):
        folder.mkdir(parents=True)
    images, maps = demo_ground_files()
    for (name, data), (map_name, map_data) in zip(images, maps):
        (bg_dir / name).write_bytes(data)
        (depth_dir / map_name).write_bytes(map_data)
    for name, data in demo_files()[1]:
        (fg_dir / name).write_bytes(data)
    return bg_dir, fg_dir, depth_dir


def test_model_depth_is_read_back_from_the_stored_backgrounds(tmp_path, small_args):
    """The tiny random model: every process places by the backgrounds' stored depth, one thread each."""
    bg_dir, fg_dir, _ = write_scene_inputs(tmp_path / "in")
    args = [a for a in small_args if a != "--demo"]
    outs = {processes: tmp_path / f"model-{processes}" for processes in (1, 2)}
    run_generate_together(*[Generation(out, "--bg-dir", bg_dir, "--fg-dir", fg_dir, *args, "--placement-mode",
                                       "ground", "--resolution", str(R), processes=processes,
                                       preexec_fn=lambda cores=processes: os.sched_setaffinity(
                                           0, sorted(os.sched_getaffinity(0))[:cores]))
                            for processes, out in outs.items()])
    for name in ("default", "backgrounds"):
        assert read_config(outs[1], name).equals(read_config(outs[2], name))
    assert verify(outs[2]).ok
    stored = [np.asarray(Image.open(io.BytesIO(r["depth"]["bytes"])), dtype=np.float32)
              for r in read_config(outs[1], "backgrounds").to_pylist()]
    for row in rows(outs[1]):
        if row["placement_mode"] == "ground":
            ground = BackgroundGround.of(stored[row["bg_id"]])
            assert ground.ground[row["foot_y"], row["foot_x"]]
            hidden = nearer_scenery(ground, ground.disparity[row["foot_y"], row["foot_x"]])
            assert not (pixels(row["mask"]).astype(bool) & hidden).any()


def test_with_augment_split_8_bit_depth_and_export(tmp_path):
    """Ground mode with --augment realistic (the shadow laid from the foot), a validation split and --depth-bits 8
    (a tiny random model for the composites' depth; placements from the demo's maps), verified, then exported."""
    from builder.testing.random_model import save_random_depth_model

    model = save_random_depth_model(tmp_path / "tiny")
    out, export = tmp_path / "out", tmp_path / "export"
    run_generate(out, "--demo", *GROUND, "--augment", "realistic", "--validation-backgrounds", "1", "--depth-bits",
                 "8", "--depth-model", model, "--depth-input-size", "28", "--batch-size", "8")
    assert verify(out).ok
    samples = rows(out)
    for row in samples:
        alpha, mask, amodal = (pixels(row[c]) for c in ("alpha", "mask", "amodal_mask"))
        assert np.array_equal(mask > 0, alpha >= 128) and not (mask & ~amodal).any()
    assert any(row["occlusion"] > 0 for row in samples)
    push = [sys.executable, str(ROOT / "scripts" / "push_to_hub.py"), str(out), "someone/ground", "--export-only",
            str(export), "--license", "apache-2.0"]
    done = subprocess.run(push, capture_output=True, text=True, env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = datasets.load_dataset(str(export), "default", split="validation")
    assert loaded.num_rows and loaded.features["amodal_mask"] == datasets.Image()
    assert verify(export).ok


def spearman(x, y) -> float:
    """Rank correlation (the values here have no ties)."""
    return float(np.corrcoef(np.argsort(np.argsort(x)), np.argsort(np.argsort(y)))[0, 1])


def test_a_metric_twin_stands_on_its_relative_twins_ground(tmp_path):
    """A metric twin of a relative model (the same weights, the metric head, its last convolution negated: far where
    the relative model says far) finds the relative twin's ground and puts its feet there, scale rising with the
    nearness at the foot; verify re-derives it, and the loader's raw depth is the model's metres. Measured: ground
    IoU 0.87-0.89 per background, 97% of feet on the relative twin's ground, Spearman 0.99; read as disparity, as
    before metric maps were read as 1 / depth: IoU 0, no foot there, Spearman -1."""
    import torch

    from builder.contract.settings import GenerateConfig, Manifest
    from builder.publish import card
    from builder.rows.bg_depth import stored_disparity
    from builder.run.depth import DepthEstimator
    from builder.run.launch import generate
    from builder.testing.random_families import save_metric_twin, save_random_family_model

    relative = save_random_family_model(tmp_path / "relative", "depth_anything")
    models = {"relative": relative, "metric": save_metric_twin(relative, tmp_path / "metric")}
    bg_dir, fg_dir, _ = write_scene_inputs(tmp_path / "in")
    grounds, samples = {}, {}
    for name, model in models.items():
        out = tmp_path / name / "out"
        generate(GenerateConfig.from_kwargs(output_dir=out, bg_dir=bg_dir, fg_dir=fg_dir, depth_model=str(model),
                                            placement_mode="ground", resolution=R, placements=4, depth_input_size=56,
                                            shard_size=100, batch_size=8, workers=0), card)
        settings = Manifest.from_json(json.loads((out / "manifest.json").read_text())).settings
        assert settings.kind.name == name
        grounds[name] = [BackgroundGround.of(stored_disparity(row, settings, given_depth=False))
                         for row in read_config(out, "backgrounds").to_pylist()]
        samples[name] = rows(out)
    for relative_ground, metric_ground in zip(grounds["relative"], grounds["metric"]):
        a, b = relative_ground.ground, metric_ground.ground
        assert (a & b).sum() / (a | b).sum() > 0.7
    twin = samples["metric"]
    assert all(row["placement_mode"] == "ground" for row in twin)
    assert np.mean([grounds["relative"][r["bg_id"]].ground[r["foot_y"], r["foot_x"]] for r in twin]) > 0.9
    for bg in range(len(grounds["relative"])):
        nearness = [grounds["relative"][bg].disparity[r["foot_y"], r["foot_x"]] for r in twin if r["bg_id"] == bg]
        assert len(nearness) > 3 and spearman(nearness, [r["scale"] for r in twin if r["bg_id"] == bg]) > 0.9
    out = tmp_path / "metric" / "out"
    assert verify(out).ok
    first = next(iter(torch_dataset(out, depth="raw", columns=["fg_bg", "depth", "sample_id"])))
    composite = pixels(next(r for r in twin if r["sample_id"] == first["sample_id"])["fg_bg"])
    metres = DepthEstimator.load(str(models["metric"]), 56, torch.device("cpu"), "float32", R).predict_raw(
        composite[None].copy())[0].numpy()
    assert np.abs(first["depth"][0].numpy() - metres).max() < 1e-3 * np.ptp(metres)
