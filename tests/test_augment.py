"""--augment: the pure perturbations on hand-checked cases, `realistic` rows that differ from their background
everywhere, re-derivable by verify, and the same on 1 and 2 processes. That `none` keeps its bytes, and
`realistic` too, is tests/test_golden.py's golden hashes."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.contract.errors import UsageError
from builder.contract.plan import Placement
from builder.contract.schema import DEFAULT, features
from builder.contract.settings import ContentSettings
from builder.rows import augment
from tests.conftest import ROOT, column_bytes, env, read_config, run_generate, run_verify
from tests.test_verify import rewrite_shard

REALISTIC = ["--demo", "--placements", "2", "--shard-size", "20", "--no-depth", "--augment", "realistic"]


def decode(cell: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell)))


# --------------------------------------------------------------------------------------------- pure functions

def test_color_jitter_hand_checked():
    rgb = np.array([[[100, 100, 100], [200, 0, 0]]], dtype=np.uint8)
    assert np.array_equal(augment.color_jitter(rgb, 1, 1, 1, 0), rgb)
    assert augment.color_jitter(rgb, 1.5, 1, 1, 0)[0, 0].tolist() == [150, 150, 150]
    # contrast 0: every pixel becomes the mean luma, (100 + 0.299 * 200) / 2 = 79.9
    assert augment.color_jitter(rgb, 1, 0, 1, 0).tolist() == [[[80, 80, 80], [80, 80, 80]]]
    # saturation 0: each pixel its own luma; red 200 -> 59.8
    assert augment.color_jitter(rgb, 1, 1, 0, 0)[0, 1].tolist() == [60, 60, 60]
    # half a turn of hue: red (200, 0, 0) -> 200 * (0.299 - 0.701, 0.299 + 0.299, 0.299 + 0.300); grey stays
    assert augment.color_jitter(rgb, 1, 1, 1, 0.5).tolist() == [[[100, 100, 100], [0, 120, 120]]]


def test_shifts_hand_checked():
    image = np.arange(1, 10, dtype=np.uint8).reshape(3, 3)
    assert augment.shift_reflect(image, 1, 0).tolist() == [[2, 1, 2], [5, 4, 5], [8, 7, 8]]
    assert augment.shift_reflect(image, 0, -1).tolist() == [[4, 5, 6], [7, 8, 9], [4, 5, 6]]
    assert augment.shift_zero(image, 1, 1).tolist() == [[0, 0, 0], [0, 1, 2], [0, 4, 5]]
    assert augment.shift_zero(image, -2, 0).tolist() == [[3, 0, 0], [6, 0, 0], [9, 0, 0]]
    rgb = np.random.default_rng(0).integers(0, 256, (9, 12, 3), dtype=np.uint8)
    for dx in range(-5, 6):  # every shift --bg-shift allows (2 |d| < the side): np.pad's reflect, written in place
        for dy in range(-4, 5):
            padded = np.pad(rgb, ((abs(dy),) * 2, (abs(dx),) * 2, (0, 0)), mode="reflect")
            expected = padded[abs(dy) - dy:abs(dy) - dy + 9, abs(dx) - dx:abs(dx) - dx + 12]
            assert np.array_equal(augment.shift_reflect(rgb, dx, dy), expected), (dx, dy)


def test_blur_and_noise():
    flat = np.full((16, 16, 3), 90, dtype=np.uint8)
    assert np.array_equal(augment.gaussian_blur(flat, 2.0), flat)  # a blur keeps a flat image
    dot = np.zeros((15, 15), dtype=np.uint8)
    dot[7, 7] = 255
    blurred = augment.gaussian_blur(dot, 1.5)
    assert blurred[7, 7] < 255 and blurred[7, 9] > 0 and blurred.argmax() == 7 * 15 + 7
    noisy = augment.add_noise(np.full((128, 128, 3), 90, dtype=np.uint8), 5.0, noise_seed=3)
    assert np.array_equal(noisy[:16, :16], augment.add_noise(flat, 5.0, noise_seed=3))
    assert not np.array_equal(noisy[:16, :16], augment.add_noise(flat, 5.0, noise_seed=4))
    assert abs(noisy.astype(float).std() - 5.0) < 0.5 and abs(noisy.mean() - 90) < 0.5
    assert np.array_equal(augment.add_noise(flat, 0.0, noise_seed=3), flat)
    line = Image.fromarray(np.array([[[0, 0, 0], [90, 90, 90], [0, 0, 0]]], np.uint8))
    assert np.asarray(augment.box_blur(line, 1))[0, 1, 0] == 30


def square_layer(size: int = 12, colour=(200, 100, 50)) -> np.ndarray:
    """An opaque square in the middle of a transparent premultiplied layer."""
    layer = np.zeros((size, size, 4), dtype=np.uint8)
    layer[4:8, 4:8] = (*colour, 255)
    return layer


def test_edge_blends_hand_checked():
    layer = square_layer()
    layer[4, 4] = (50, 25, 12, 64)  # a soft corner: premultiplied colour at a quarter alpha
    hard = augment.with_alpha(layer, augment.hard_alpha(layer[..., 3], 128))
    assert hard[4, 4].tolist() == [0, 0, 0, 0] and hard[5, 5].tolist() == [200, 100, 50, 255]
    feathered = augment.with_alpha(square_layer(), augment.feather_alpha(square_layer()[..., 3], 1.0))
    assert feathered[..., 3].max() <= 255 and feathered[4, 4, 3] < 255 and feathered[3, 3, 3] == 0
    dot = np.zeros((9, 9, 4), dtype=np.uint8)
    dot[4, 4] = 255
    streak = augment.motion_blur(dot, 3, 0)  # horizontal: three pixels of a third each
    assert streak[4, 3:6, 3].tolist() == [85, 85, 85] and streak[..., 3].sum() == 255
    assert augment.motion_blur(dot, 3, 90)[3:6, 4, 3].tolist() == [85, 85, 85]


def test_rotation_and_shadow_hand_checked():
    layer = np.zeros((8, 8, 4), dtype=np.uint8)
    layer[1, 2:6] = 255  # a horizontal bar
    turned = augment.rotate_layer(layer, 90, (4, 4))
    assert np.array_equal(turned, np.rot90(layer, 1, axes=(0, 1)))  # 90 degrees counter-clockwise
    background = np.full((8, 8, 3), 200, dtype=np.uint8)
    alpha = np.zeros((8, 8), dtype=np.uint8)
    alpha[2:4, 2:4] = 255
    shaded = augment.cast_shadow(background, alpha, 2, 1, 0.0, 0.5)
    assert shaded[3, 4].tolist() == [100, 100, 100] and shaded[2, 2].tolist() == [200, 200, 200]
    assert np.array_equal(augment.cast_shadow(background, alpha, 2, 1, 1.0, 0.0), background)


def test_object_alpha_is_the_layers_alpha():
    """A scene decides from the alpha alone (one channel rotated, no colour), so it must be the colour layer's
    exactly: every blend, any angle, boxes at the frame's edges, soft and hard cut-outs."""
    rng = np.random.default_rng(5)
    settings = ContentSettings(augment="realistic", resolution=48, fg_rotation=180)
    scene = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for index in range(60):
        height, width = (int(v) for v in rng.integers(3, 40, size=2))
        alpha = rng.integers(0, 256, (height, width), dtype=np.uint8) * (rng.random((height, width)) < 0.7)
        placed = np.dstack([(rng.integers(0, 256, (height, width, 3)) * alpha[..., None] // 255), alpha]).astype(
            np.uint8)
        placement = Placement(int(rng.integers(0, 49 - width)), int(rng.integers(0, 49 - height)), 0.5, width, height)
        p = augment.draw_augmentation(settings, index, placement)
        expected = augment.object_layer(placed, placement, p, scene, 128).alpha(48)
        assert np.array_equal(augment.object_alpha(placed[..., 3], placement, p, 48, 128), expected), p.blend


def test_layer_cut_to_its_content_gives_the_whole_windows_pixels(monkeypatch):
    """The layer is worked on its content's box grown by the edge blend's reach: the composite and the alpha are
    those of the whole window (the reach made unbounded), for wide feathers and long motion blurs, near the frame's
    edges too."""
    rng = np.random.default_rng(6)
    settings = ContentSettings(augment="realistic", resolution=64, fg_rotation=180, feather=8.0, motion=21,
                               blend_modes="feather,motion")
    scene = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cases = []
    for index in range(40):
        height, width = (int(v) for v in rng.integers(4, 48, size=2))
        yy, xx = np.mgrid[:height, :width]
        alpha = np.clip((1 - ((xx - width / 2) / (width * 0.45)) ** 2 - ((yy - height / 2) / (height * 0.45)) ** 2)
                        * 600, 0, 255).astype(np.uint8)
        placed = np.dstack([(rng.integers(0, 256, (height, width, 3)) * alpha[..., None] // 255), alpha]).astype(
            np.uint8)
        placement = Placement(int(rng.integers(0, 65 - width)), int(rng.integers(0, 65 - height)), 0.5, width, height)
        cases.append((placed, placement, augment.draw_augmentation(settings, index, placement)))

    def composites() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for placed, placement, p in cases:
            layer, image = augment.object_layer(placed, placement, p, scene, 128), scene.copy()
            layer.paste(image, None)
            out.append((image, layer.alpha(64)))
        return out

    cut = composites()
    monkeypatch.setattr(augment, "blend_reach", lambda p: 10 ** 6)
    for (image, alpha), (whole_image, whole_alpha) in zip(cut, composites()):
        assert np.array_equal(image, whole_image) and np.array_equal(alpha, whole_alpha)


def test_jitter_layer_on_premultiplied_colour():
    layer = np.array([[[100, 50, 20, 255], [50, 25, 10, 128], [0, 0, 0, 0]]], dtype=np.uint8)
    noisy = np.random.default_rng(8).integers(0, 256, (13, 17, 4), dtype=np.uint8)  # PIL unpacks RGBX as the copy
    assert augment.layer_colour(noisy).tobytes() == Image.fromarray(np.ascontiguousarray(noisy[..., :3])).tobytes()
    assert np.array_equal(augment.jitter_layer(layer, 1, 1, 1, 0), layer)
    brighter = augment.jitter_layer(layer, 3, 1, 1, 0)  # colour scaled, kept within [0, alpha]
    assert brighter.tolist() == [[[255, 150, 60, 255], [128, 75, 30, 128], [0, 0, 0, 0]]]
    # contrast 0: every pixel the alpha-weighted mean luma, from PIL's 8-bit lumas of the premultiplied colours
    # 62 and 31: (62 + 31) * 255 / (255 + 128) = 61.9, premultiplied 61.9 and 31.1
    flat = augment.jitter_layer(layer, 1, 0, 1, 0)
    assert flat[0, 0, :3].tolist() == [62, 62, 62] and flat[0, 1, :3].tolist() == [31, 31, 31]


def test_harmonize_moves_luma_toward_the_background():
    layer = square_layer(colour=(50, 50, 50))
    dark, bright = np.full((12, 12, 3), 50, np.uint8), np.full((12, 12, 3), 150, np.uint8)
    assert augment.harmonize_gain(layer, dark, 1.0) == 1.0
    assert augment.harmonize_gain(layer, bright, 0.25) == 1.5  # 1 + 0.25 * (150/50 - 1)
    assert augment.harmonize_gain(layer, bright, 1.0) == 2.0  # 1 + 1 * (150/50 - 1) = 3, clipped to 2
    assert augment.harmonize_gain(layer, np.full((12, 12, 3), 75, np.uint8), 1.0) == pytest.approx(1.5)


# --------------------------------------------------------------------------------------------- settings, schema

def test_settings_presets_and_problems():
    none, realistic = ContentSettings(), ContentSettings(augment="realistic")
    assert not none.with_augment and none.bg_noise == 0 and "augment" not in none.to_json()
    assert realistic.bg_noise > 0 and realistic.blend_mode_list == list(augment_modes())
    assert ContentSettings(augment="realistic", shadow=0).shadow == 0
    assert ContentSettings.from_json(realistic.to_json()) == realistic
    with pytest.raises(UsageError, match="--bg-noise 3.0 needs --augment realistic"):
        ContentSettings(bg_noise=3.0)
    with pytest.raises(UsageError, match="--blend-modes 'alpha,blur'"):
        ContentSettings(augment="realistic", blend_modes="alpha,blur")


def augment_modes() -> tuple[str, ...]:
    from builder.contract.settings import BLEND_MODES
    return BLEND_MODES


def test_augment_columns_match_the_parameters():
    columns = [c.name for c in DEFAULT.columns if c.augment and c.image is None]
    assert columns == [f.name for f in dataclasses.fields(augment.Augmentation)]
    assert "alpha" in features("default", True, True) and "alpha" not in features("default", True)


# --------------------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("realistic") / "out"
    run_generate(out, *REALISTIC)
    return out


def test_realistic_rows_differ_from_background_and_mask_is_thresholded_alpha(realistic):
    table = read_config(realistic, "default")
    assert datasets_features(realistic) == features("default", False, True)
    backgrounds = [decode(b) for b in column_bytes(realistic, "backgrounds", "image")]
    changed = 0
    for row in table.to_pylist():
        alpha, mask = decode(row["alpha"]["bytes"]), decode(row["mask"]["bytes"])
        assert np.array_equal(mask, np.where(alpha >= 128, 255, 0))
        diff = np.abs(decode(row["fg_bg"]["bytes"]).astype(int) - backgrounds[row["bg_id"]]).max(axis=-1)
        changed += float(diff[alpha == 0].mean()) > 3.0  # JPEG at quality 95 alone: mean below 1 level
    assert changed >= 0.95 * table.num_rows
    assert set(table.column("blend").to_pylist()) == set(augment_modes())


def datasets_features(out: Path):
    import datasets
    return datasets.load_dataset(str(out), "default", split="train").features


@pytest.mark.parametrize("column, change, image_problem", [
    ("bg_brightness", lambda v: v + 0.1, "composite differs from the one re-derived"),
    ("fg_angle", lambda v: v + 5, "alpha differs in"),
])
def test_verify_passes_and_catches_one_altered_parameter(realistic, tmp_path, column, change, image_problem):
    assert run_verify(realistic).returncode == 0
    broken = tmp_path / "broken"
    shutil.copytree(realistic, broken)

    def alter(rows):
        rows[3][column] = change(rows[3][column])

    rewrite_shard(broken / "data" / "default" / "train-00000-of-00003.arrow", alter)
    output = run_verify(broken)
    assert output.returncode != 0
    assert f"row 3: sample_id 3: augmentation parameter {column}" in output.stdout
    assert f"sample_id 3: {image_problem}" in output.stdout  # the images no longer fit the stored parameters


def test_realistic_same_bytes_on_one_and_two_processes(realistic, tmp_path):
    two = tmp_path / "two"
    run_generate(two, *REALISTIC, processes=2)
    for config in ("default", "backgrounds", "foregrounds"):
        assert read_config(two, config).equals(read_config(realistic, config)), config
    assert json.loads((two / "stats.json").read_text()) == json.loads((realistic / "stats.json").read_text())


def test_cli_flags_reach_the_settings():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--help"], capture_output=True,
                            text=True, env=env(), timeout=60)
    assert "--augment" in result.stdout and "--blend-modes" in result.stdout and "--fg-rotation" in result.stdout
