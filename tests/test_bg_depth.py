"""--bg-depth-dir: bad maps exit 2 before anything is written, naming the file and the fix; maps with holes work;
the flags' usage errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from builder.rows.bg_depth import disparity_of, fit_depth, known_values
from tests.conftest import run_generate
from tests.test_ground_e2e import GROUND, write_scene_inputs


def refused(tmp_path, *args) -> str:
    out = tmp_path / "out"
    done = run_generate(out, *args, check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    assert not out.exists()  # nothing written
    return done.stderr


@pytest.fixture
def scene(tmp_path):
    return write_scene_inputs(tmp_path / "in")


def ground_args(scene, *extra):
    bg_dir, fg_dir, depth_dir = scene
    return ["--bg-dir", bg_dir, "--fg-dir", fg_dir, "--bg-depth-dir", depth_dir, "--no-depth", *GROUND, *extra]


def test_missing_map(tmp_path, scene):
    (scene[2] / "demo_ground_01.npy").unlink()
    err = refused(tmp_path, *ground_args(scene))
    assert "demo_ground_01.png/.npy: no depth map for background demo_ground_01.png; add one" in err


def test_wrong_aspect(tmp_path, scene):
    np.save(scene[2] / "demo_ground_02.npy", np.linspace(0, 1, 40 * 60).reshape(40, 60))
    err = refused(tmp_path, *ground_args(scene))
    assert "demo_ground_02.npy (depth of demo_ground_02.png): is 60x40 but its background is 320x320" in err


def test_mostly_unknown_and_constant_and_negative_and_unreadable(tmp_path, scene):
    mostly = np.full((32, 32), np.nan)
    mostly[:10] = 1.0
    np.save(scene[2] / "demo_ground_00.npy", mostly)
    np.save(scene[2] / "demo_ground_01.npy", np.full((32, 32), 3.0))
    (scene[2] / "demo_ground_02.npy").write_bytes(b"not a numpy file")
    err = refused(tmp_path, *ground_args(scene))
    assert "demo_ground_00.npy (depth of demo_ground_00.png): is 69% unknown" in err
    assert "demo_ground_01.npy (depth of demo_ground_01.png): is constant (3) where known" in err
    assert "demo_ground_02.npy (depth of demo_ground_02.png): unreadable depth map" in err
    negative = np.ones((32, 32))
    negative[0, 0] = -1
    np.save(scene[2] / "demo_ground_00.npy", negative)
    err = refused(tmp_path, *ground_args(scene, "--bg-depth-kind", "depth"))
    assert "demo_ground_00.npy (depth of demo_ground_00.png): has negative distances" in err


def test_flag_usage_errors(tmp_path, scene):
    bg_dir, fg_dir, depth_dir = scene
    err = refused(tmp_path, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--no-depth", "--placement-mode", "ground")
    assert "pass --bg-depth-dir DIR" in err
    err = refused(tmp_path, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--no-depth", "--bg-depth-dir", depth_dir)
    assert "--placement-mode ground or physical only" in err


def test_depth_kind_png_with_zero_holes_and_an_extra_map(tmp_path, scene):
    """A 16-bit distance PNG whose 0 pixels are unknown works; a map of no background is only a warning."""
    distance = 1 / np.maximum(np.load(scene[2] / "demo_ground_00.npy"), 0.02)
    levels = np.round(distance / distance.max() * 60000).astype(np.uint16)
    levels[100:120, 100:140] = 0
    for path in scene[2].iterdir():
        path.unlink()
    for n in range(4):
        Image.fromarray(levels).save(scene[2] / f"demo_ground_{n:02d}.png")
    (scene[2] / "not_a_background.npy").write_bytes(b"whatever")
    done = run_generate(tmp_path / "out", *ground_args(scene, "--bg-depth-kind", "depth"))
    assert "not_a_background.npy: a depth map for no background; ignored" in done.stderr


def test_unknown_in_depth_maps_and_the_crop():
    values = np.array([[1.0, 0.0, np.inf], [2.0, 4.0, 0.5]] * 2)
    disparity = disparity_of(known_values(values, "depth"), "depth")
    assert np.isnan(disparity[0, 1]) and np.isnan(disparity[0, 2]) and disparity[1, 1] == 0.25
    assert known_values(values, "disparity")[0, 1] == 0.0  # 0 is a value in a disparity map
    wide = np.tile(np.arange(8, dtype=np.float64), (4, 1))  # 8 x 4: the centre 4 columns are kept
    assert np.array_equal(fit_depth(wide, (80, 40), 4)[0], [2, 3, 4, 5])


def test_background_without_ground_falls_back_to_uniform(tmp_path, scene):
    """A map whose disparity changes only across the frame (a wall seen at an angle) has no ground: its rows are
    placed uniformly, recorded per row, counted in stats.json and the card, and verified."""
    import json

    from builder.verify.runner import verify
    from tests.conftest import read_config

    np.save(scene[2] / "demo_ground_01.npy", np.tile(np.linspace(0.1, 1.0, 320), (320, 1)))
    out = tmp_path / "out"
    run_generate(out, *ground_args(scene))
    modes = {(row["bg_id"], row["placement_mode"]) for row in read_config(out, "default").to_pylist()}
    assert modes == {(0, "ground"), (1, "uniform"), (2, "ground"), (3, "ground")}
    counts = json.loads((out / "stats.json").read_text())["placement"]
    assert counts["uniform"] == 3 * 2 * 3 and f"{counts['uniform']:,} uniform" in (out / "README.md").read_text()
    assert verify(out).ok
