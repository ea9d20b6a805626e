"""`--placement-mode physical` end to end on procedural scenes whose metric depth and focal length are known: the
opaque height of every placed cut-out against f_R * H / Z_foot at two resolutions, the fallback of a cut-out too
large for the scale range, verify (and tampered rows), the round trip through `datasets.load_dataset`, and the
missing inputs that exit 2."""

from __future__ import annotations

import io
import json

import datasets
import numpy as np
import pytest
from PIL import Image

from builder.contract.errors import UsageError
from builder.contract.settings import GenerateConfig
from builder.rows.assets import load_inputs, read_heights
from builder.rows.bg_depth import fit_depth
from builder.rows.demo import DEMO_BACKGROUNDS, demo_files, ground_scene
from builder.rows.files import InputFile
from builder.rows.sources import Cutout
from builder.verify.runner import verify
from tests.conftest import Generation, read_config, run_generate, run_generate_together, write_tampered_copy

FOCAL_PX = 400.0  # of the original backgrounds, whose shorter side is 320 px
NEAREST_M = 2.0  # the floor's bottom row is this far: depth = NEAREST_M / the demo's floor disparity
HEIGHTS = {"demo_fg_00": 0.5, "demo_fg_01": 0.3, "demo_fg_02": 1.0, "giant": 50.0}  # giant: never in range
RESOLUTIONS = (64, 128)
PAD = (((0, 0), (80, 80)), ((40, 40), (0, 0)))  # landscape 480 x 320 and portrait 320 x 400: centre crops


def write_scenes(root):
    """The demo's ground scenes widened or heightened (the centre crop gives them back), with depth in metres
    (sky: 0, unknown), the demo's cut-outs plus a copy called giant, and their heights."""
    bg_dir, fg_dir, depth_dir = root / "bg", root / "fg", root / "depth"
    for folder in (bg_dir, fg_dir, depth_dir):
        folder.mkdir(parents=True)
    for i in range(DEMO_BACKGROUNDS):
        image, disparity, _ = ground_scene(i)
        depth = np.where(disparity > 0, NEAREST_M / np.maximum(disparity, 1e-9), 0.0)
        pad = PAD[i % 2]
        Image.fromarray(np.pad(np.asarray(image), (*pad, (0, 0)), mode="edge")).save(bg_dir / f"scene_{i}.png")
        np.save(depth_dir / f"scene_{i}.npy", np.pad(depth, pad, mode="edge"))
    for name, data in demo_files()[1]:
        (fg_dir / name).write_bytes(data)
    (fg_dir / "giant.png").write_bytes(demo_files()[1][0][1])
    heights = root / "heights.csv"
    heights.write_text("name,height_m\n" + "".join(f"{name},{h}\n" for name, h in HEIGHTS.items()))
    return bg_dir, fg_dir, depth_dir, heights


def physical_args(inputs, *extra) -> list:
    bg_dir, fg_dir, depth_dir, heights = inputs
    return ["--bg-dir", bg_dir, "--fg-dir", fg_dir, "--bg-depth-dir", depth_dir, "--bg-depth-kind", "depth",
            "--placement-mode", "physical", "--focal-px", FOCAL_PX, "--fg-heights", heights, "--no-depth",
            "--placements", "2", "--scale-min", "0.1", "--scale-max", "0.9", *extra]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("physical-in"))


@pytest.fixture(scope="module")
def runs(scenes, tmp_path_factory) -> dict:
    """One run per resolution, side by side."""
    base = tmp_path_factory.mktemp("physical")
    outs = {r: base / f"r{r}" for r in RESOLUTIONS}
    run_generate_together(*[Generation(out, *physical_args(scenes, "--resolution", r)) for r, out in outs.items()])
    return outs


def expected_height(row: dict, depth: np.ndarray, resolution: int) -> float:
    """f_R * H / Z_foot from the scene's own numbers: Z at the foot sampled (nearest) from the original map, f_R for
    its centre crop to the shorter side, resized to R."""
    height, width = depth.shape
    side = min(height, width)
    y = int((height - side) / 2 + (row["foot_y"] + 0.5) * side / resolution)
    x = int((width - side) / 2 + (row["foot_x"] + 0.5) * side / resolution)
    return FOCAL_PX * resolution / side * row["height_m"] / depth[y, x]


def opaque_height(row: dict) -> int:
    rows = np.flatnonzero(np.asarray(Image.open(io.BytesIO(row["amodal_mask"]["bytes"]))).any(axis=1))
    return int(rows[-1] - rows[0] + 1)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_opaque_height_is_focal_times_height_over_depth(runs, scenes, resolution):
    samples = read_config(runs[resolution], "default").to_pylist()
    depths = [np.load(scenes[2] / f"scene_{i}.npy") for i in range(DEMO_BACKGROUNDS)]
    placed = [row for row in samples if row["placement_mode"] == "physical"]
    assert len(placed) == 3 * DEMO_BACKGROUNDS * 2 * 2  # every row but the giant's
    for row in placed:
        expected, measured = expected_height(row, depths[row["bg_id"]], resolution), opaque_height(row)
        assert abs(measured - expected) <= 1 or abs(measured - expected) <= 0.03 * expected, (row["sample_id"],
                                                                                              measured, expected)


def test_a_cut_out_too_large_for_the_scale_range_falls_back_and_says_so(runs):
    samples = read_config(runs[64], "default").to_pylist()
    giant = {row["fg_id"] for row in samples if row["height_m"] == HEIGHTS["giant"]}
    assert len(giant) == 1
    assert {row["placement_mode"] for row in samples if row["fg_id"] in giant} == {"uniform"}
    counts = json.loads((runs[64] / "stats.json").read_text())["placement"]
    assert (counts["physical"], counts["uniform"]) == (48, 16)
    assert "16 uniform" in (runs[64] / "README.md").read_text()


def test_verify_rederives_the_size_and_names_tampered_rows(runs, scenes, tmp_path):
    out = runs[64]
    assert verify(out).ok
    table = read_config(out, "default")
    samples = table.to_pylist()
    samples[2]["height_m"] *= 1.5
    samples[5]["scale"] *= 1.1
    tampered = write_tampered_copy(out, tmp_path / "tampered", samples, table.schema)
    problems = "\n".join(verify(tampered).problems)
    assert "sample_id 2: (foot_x, foot_y, height_m, placement_mode)" in problems
    assert "sample_id 5: scale" in problems and "does not follow f_R * height_m / Z_foot" in problems


def test_round_trip_with_load_dataset(runs):
    loaded = datasets.load_dataset(str(runs[128]), "default", split="train")
    assert loaded.features["height_m"] == datasets.Value("float32")
    assert {"foot_x", "foot_y", "amodal_mask", "occlusion"} <= set(loaded.features)
    names = [f["name"] for f in json.loads((runs[128] / "manifest.json").read_text())["inputs"]["foregrounds"]]
    for row in loaded:
        assert row["height_m"] == pytest.approx(HEIGHTS[names[row["fg_id"]].removesuffix(".png")])


def test_the_stored_maps_are_metres_with_the_sky_unknown(runs, scenes):
    """The backgrounds' stored maps (builder.contract.given_depth) through `datasets.load_dataset`: metres within half
    a level of the scene's, level 0 exactly where the scene's depth is 0 (unknown)."""
    loaded = datasets.load_dataset(str(runs[128]), "backgrounds", split="train")
    for row in loaded:
        levels = np.asarray(row["given_depth"], dtype=np.float64)
        expected = fit_depth(np.load(scenes[2] / row["source"].replace(".png", ".npy")), None, 128)
        assert (expected == 0).any() and np.array_equal(levels == 0, expected == 0)
        low, high = row["given_depth_min"], row["given_depth_max"]
        metres = low + (levels - 1) / 65534 * (high - low)
        known = levels > 0
        assert low > 0 and np.abs(metres[known] - expected[known]).max() <= (high - low) / 65534 / 2 * 1.001


def test_missing_focal_length_heights_and_metric_depth_are_named_at_once(tmp_path, scenes):
    bg_dir, fg_dir, depth_dir, _ = scenes
    with pytest.raises(UsageError) as err:
        GenerateConfig.from_kwargs(bg_dir=bg_dir, fg_dir=fg_dir, bg_depth_dir=depth_dir, placement_mode="physical")
    text = "\n".join(err.value.problems)
    assert "pass --focal-px F" in text and "pass --fg-heights FILE.csv" in text
    assert "a depth model that predicts its field of view (a Depth Pro model, --depth-model)" in text
    assert "needs metric depth: --bg-depth-dir maps hold disparity; give maps in metres with --bg-depth-kind depth" \
        in text
    for extra, says in (({"demo": True}, "the demo's maps are relative"),
                        ({"bg_dir": bg_dir, "fg_dir": fg_dir, "no_depth": True},
                         "metric depth model (drop --no-depth)"),
                        ({"bg_dir": bg_dir, "fg_dir": fg_dir, "depth_kind": "relative"},
                         "--depth-kind relative says the model's is not")):
        with pytest.raises(UsageError) as err:
            GenerateConfig.from_kwargs(placement_mode="physical", focal_px=300.0, fg_heights=tmp_path / "h", **extra)
        assert says in "\n".join(err.value.problems)
    with pytest.raises(UsageError) as err:
        GenerateConfig.from_kwargs(demo=True, placement_mode="ground", focal_px=300.0, fg_heights=tmp_path / "h")
    assert any("--focal-px is used by --placement-mode physical only" in p for p in err.value.problems)


def test_without_focal_px_the_focal_length_is_left_to_the_depth_model(tmp_path, scenes):
    """No --focal-px: accepted where the depth model gives the backgrounds' depth (whether it predicts a field of view
    is known once it is loaded); refused, naming both ways, where it does not (--no-depth, --bg-depth-dir)."""
    bg_dir, fg_dir, depth_dir, heights = scenes
    common = dict(bg_dir=bg_dir, fg_dir=fg_dir, placement_mode="physical", fg_heights=heights)
    assert GenerateConfig.from_kwargs(**common).content.focal_px is None
    for extra in ({"no_depth": True}, {"bg_depth_dir": depth_dir, "bg_depth_kind": "depth"}):
        with pytest.raises(UsageError) as err:
            GenerateConfig.from_kwargs(**common, **extra)
        [problem] = [p for p in err.value.problems if "focal length" in p]
        assert "pass --focal-px F" in problem and "(a Depth Pro model, --depth-model)" in problem


def test_a_metric_models_stored_depth_gives_the_size(tmp_path, scenes):
    """Without --bg-depth-dir a metric depth model's stored background depth (decoded to metres) is Z; a relative
    model is refused once loaded, before anything is written. Models: tiny random Depth Anything twins
    (builder.testing.random_families)."""
    import torch

    from builder.publish import card
    from builder.run.launch import generate
    from builder.run.pipeline import load_job
    from builder.testing.random_families import save_metric_twin, save_random_family_model

    relative = save_random_family_model(tmp_path / "relative", "depth_anything")
    metric = str(save_metric_twin(relative, tmp_path / "m"))
    bg_dir, fg_dir, _, heights = scenes
    common = dict(bg_dir=bg_dir, fg_dir=fg_dir, placement_mode="physical", focal_px=FOCAL_PX, fg_heights=heights,
                  resolution=64, placements=2, depth_input_size=56, batch_size=8, workers=0, scale_min=0.1,
                  scale_max=0.9)
    with pytest.raises(UsageError, match="outputs relative-inverse depth: use a metric depth model"):
        load_job(GenerateConfig.from_kwargs(depth_model=str(relative), **common), torch.device("cpu"))
    without_focal = {**common, "focal_px": None}
    for model, count in ((metric, 1), (str(relative), 2)):  # no field of view: --focal-px is needed (both named)
        with pytest.raises(UsageError, match="predicts no field of view: pass --focal-px F") as err:
            load_job(GenerateConfig.from_kwargs(depth_model=model, **without_focal), torch.device("cpu"))
        assert len(err.value.problems) == count
    out = tmp_path / "out"
    generate(GenerateConfig.from_kwargs(output_dir=out, depth_model=metric, **common), card)
    assert assert_sized_by(out, lambda bg_id: FOCAL_PX * 64 / 320) >= 12
    assert verify(out).ok


def test_heights_file_problems_name_the_line_and_the_cut_out(tmp_path, scenes):
    heights = tmp_path / "heights.csv"
    heights.write_text("demo_fg_00,0.5\n../demo_fg_01,0.3\ndemo_fg_02,tall\ndemo_fg_00,0.4\nnot_a_cut_out,2\n")
    bg_dir, fg_dir, depth_dir, _ = scenes
    config = GenerateConfig.from_kwargs(bg_dir=bg_dir, fg_dir=fg_dir, bg_depth_dir=depth_dir, bg_depth_kind="depth",
                                        placement_mode="physical", focal_px=FOCAL_PX, fg_heights=heights)
    with pytest.raises(UsageError) as err:
        load_inputs(config.content, config.run)
    text = "\n".join(err.value.problems)
    assert f"{heights}: line 2: name '../demo_fg_01': give a cut-out's file stem" in text
    assert f"{heights}: line 3: height_m 'tall' of 'demo_fg_02': give a positive number of metres" in text
    assert f"{heights}: line 4: 'demo_fg_00' appears twice" in text
    assert f"{heights}: no height for 3 cut-out(s): demo_fg_01.png, demo_fg_02.png, giant.png" in text
    assert "'not_a_cut_out' names no cut-out or category; ignored" in "\n".join(err.value.warnings)


def test_a_height_by_the_stem_first_then_by_the_category(tmp_path):
    named = (("person/anna.png", "person"), ("person/bob.png", "person"), ("cat/tom.png", "cat"))
    cutouts = [Cutout(name, InputFile(name.split("/")[1], b""), category) for name, category in named]
    heights, problems = tmp_path / "heights.csv", []
    heights.write_text("person,1.7\nbob,1.9\ncat,0.3\n")
    assert read_heights(heights, cutouts, problems, []) == (1.7, 1.9, 0.3) and not problems


def test_missing_height_exits_2_before_writing(tmp_path, scenes):
    heights = tmp_path / "heights.csv"
    heights.write_text("demo_fg_00,0.5\n")
    out = tmp_path / "out"
    done = run_generate(out, *physical_args((*scenes[:3], heights), "--resolution", 64), check=False)
    assert done.returncode == 2 and not out.exists(), done.stderr[-2000:]
    assert "no height for 3 cut-out(s)" in done.stderr


def stored_metres_and_focal(out) -> tuple[dict, dict]:
    """bg_id -> its stored depth in metres (raw = min + level / 65535 * (max - min)), and its stored focal length
    (None where the model predicts no field of view)."""
    from builder.contract.depth_kinds import FOCAL_COLUMN

    metres, focal = {}, {}
    for row in read_config(out, "backgrounds").to_pylist():
        levels = np.asarray(Image.open(io.BytesIO(row["depth"]["bytes"])), dtype=np.float64)
        metres[row["bg_id"]] = row["depth_min"] + levels / 65535 * (row["depth_max"] - row["depth_min"])
        focal[row["bg_id"]] = row.get(FOCAL_COLUMN)
    return metres, focal


def assert_sized_by(out, focal_of) -> int:
    """Every physically placed row's opaque height within 1 px or 3% of f_R * H / Z_foot, f_R = focal_of(bg_id) and
    Z_foot the stored depth at the foot; returns how many rows were placed physically."""
    metres = stored_metres_and_focal(out)[0]
    placed = [row for row in read_config(out, "default").to_pylist() if row["placement_mode"] == "physical"]
    for row in placed:
        expected = focal_of(row["bg_id"]) * row["height_m"] / metres[row["bg_id"]][row["foot_y"], row["foot_x"]]
        measured = opaque_height(row)
        assert abs(measured - expected) <= 1 or abs(measured - expected) <= 0.03 * expected, (measured, expected)
    return len(placed)


def field_of_view_standin():
    """A metric depth model that predicts its field of view, without weights: metres = 1 / the stand-in's inverse depth
    (builder.testing.standin_depth: a floor nearer towards the bottom), and a field of view of 40 to 60 degrees from
    each image's mean brightness, so each background has a focal length of its own."""
    import torch

    from builder.contract.depth_kinds import METRIC
    from builder.run.depth import scale_to_uint16
    from builder.testing.standin_depth import StandinDepthEstimator

    class FieldOfViewStandin(StandinDepthEstimator):
        kind, field_of_view = METRIC, True

        def predict_maps(self, images: np.ndarray):
            fov = 40.0 + 20.0 * torch.from_numpy(images.reshape(len(images), -1).mean(axis=1) / 255.0).float()
            return 1.0 / self.predict_raw(images), 0.5 * images.shape[1] / torch.tan(torch.deg2rad(fov) / 2)

        def predict(self, images: np.ndarray):
            return scale_to_uint16(*self.predict_maps(images))

    return FieldOfViewStandin()


def test_without_focal_px_a_field_of_view_models_stored_focal_length_gives_the_size(tmp_path, scenes, monkeypatch):
    """The whole path without torchvision, by a stand-in for a model that predicts its field of view: each background
    stores its focal length (`focal_length_px`, float32), the rule sizes by it, the manifest and card say so, verify
    re-derives the sizes from it and names the rows of a background whose stored focal length was altered."""
    import types

    from builder.contract.depth_kinds import FOCAL_COLUMN
    from builder.publish import card
    from builder.run import pipeline
    from builder.run.launch import generate

    monkeypatch.setattr(pipeline, "DepthEstimator", types.SimpleNamespace(load=lambda *a, **k: field_of_view_standin()))
    bg_dir, fg_dir, _, heights = scenes
    out = tmp_path / "out"
    generate(GenerateConfig.from_kwargs(output_dir=out, bg_dir=bg_dir, fg_dir=fg_dir, placement_mode="physical",
                                        fg_heights=heights, depth_model="fov-standin", resolution=64, placements=1,
                                        batch_size=8, workers=0, scale_min=0.1, scale_max=0.9), card)
    report = verify(out)
    assert report.ok, report.summary()
    focal = stored_metres_and_focal(out)[1]
    assert assert_sized_by(out, focal.__getitem__) >= 12
    assert len(set(focal.values())) == DEMO_BACKGROUNDS and all(50 < f < 90 for f in focal.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["field_of_view"] is True and manifest["settings"]["focal_px"] is None
    assert manifest["inputs"]["physical"]["focal_from"] == "field_of_view"
    text = (out / "README.md").read_text()
    assert f"f_R the background's `{FOCAL_COLUMN}` in `backgrounds`" in text and "R / 2 / tan(fov / 2)" in text
    loaded = datasets.load_dataset(str(out), "backgrounds", split="train")
    assert loaded.features[FOCAL_COLUMN] == datasets.Value("float32")
    assert {row["bg_id"]: row[FOCAL_COLUMN] for row in loaded} == focal
    table = read_config(out, "backgrounds")
    rows = table.to_pylist()
    rows[1][FOCAL_COLUMN] *= 1.5
    tampered = write_tampered_copy(out, tmp_path / "tampered", rows, table.schema, "backgrounds")
    problems = "\n".join(verify(tampered).problems)
    altered = [row["sample_id"] for row in read_config(out, "default").to_pylist()
               if row["bg_id"] == rows[1]["bg_id"] and row["placement_mode"] == "physical"]
    assert altered and all(f"sample_id {sample_id}: " in problems for sample_id in altered), problems[:3000]
