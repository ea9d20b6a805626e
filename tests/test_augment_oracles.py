"""`--augment realistic` checked end to end by oracles that share no code with the generator (verify re-derives
the rows with the generator's own functions, so a wrong function there agrees with itself): each part of the
augmentation is turned on alone, rows are loaded with `datasets`, and what the stored parameters say is measured
in the pixels with plain numpy. Inputs: textured (random-pixel) backgrounds, so a shift or a shadow shows."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from tests.conftest import run_generate, write_inputs

R = 96
BASE = ["--no-depth", "--resolution", R, "--placements", 6, "--augment", "realistic"]
ALL_OFF = {"--bg-jitter": 0, "--bg-noise": 0, "--bg-shift": 0, "--bg-blur": 0, "--blend-modes": "alpha",
           "--motion": 0, "--shadow": 0, "--fg-rotation": 0, "--fg-jitter": 0, "--harmonize": 0}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("inputs"))


def generate(root, inputs, **only) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Rows of a run with every part off but `only`, and the clean backgrounds by bg_id."""
    flags = {**ALL_OFF, **{"--" + name.replace("_", "-"): value for name, value in only.items()}}
    out = root / "out"
    run_generate(out, "--bg-dir", inputs[0], "--fg-dir", inputs[1], *BASE,
                 *[str(x) for pair in flags.items() for x in pair])
    rows = list(datasets.load_dataset(str(out), "default", split="train"))
    backgrounds = {r["bg_id"]: np.asarray(r["image"], dtype=np.float64)
                   for r in datasets.load_dataset(str(out), "backgrounds", split="train")}
    return rows, backgrounds


def test_every_stored_parameter_lies_in_its_documented_range(tmp_path, inputs):
    """The preset's documented ranges (README / --help): jitter 0.2 and 0.15, shift 4 px, blur 1 px, noise 4
    levels, rotation 15 degrees, harmonise 0.5, feather [0.5, 3], motion [2, 9] px, shadow opacity 0.6, shadow
    offset within 8% of the cut-out's longer side and never upward."""
    out = tmp_path / "out"
    run_generate(out, "--bg-dir", inputs[0], "--fg-dir", inputs[1], *BASE)
    rows = list(datasets.load_dataset(str(out), "default", split="train"))
    column = {name: np.array([row[name] for row in rows]) for name in rows[0] if not isinstance(rows[0][name], dict)
              and name not in ("fg_bg", "mask", "alpha", "bbox")}
    for prefix, jitter in (("bg", 0.2), ("fg", 0.15)):
        for name in ("brightness", "contrast", "saturation"):
            assert np.all(np.abs(column[f"{prefix}_{name}"] - 1) <= jitter + 1e-6), f"{prefix}_{name}"
        assert np.all(np.abs(column[f"{prefix}_hue"]) <= jitter / 10 + 1e-6)
    for name in ("bg_dx", "bg_dy"):  # integers in [-4, 4], both signs drawn over 48 rows
        assert set(column[name]) <= set(range(-4, 5)) and column[name].min() < 0 < column[name].max(), name
    assert np.all((column["bg_blur_radius"] >= 0) & (column["bg_blur_radius"] <= 1))
    assert np.all((column["bg_noise_sigma"] >= 0) & (column["bg_noise_sigma"] <= 4))
    assert np.all(np.abs(column["fg_angle"]) <= 15) and np.all((column["harmonize_strength"] >= 0)
                                                                & (column["harmonize_strength"] <= 0.5))
    blend = column["blend"]
    assert set(blend) <= {"alpha", "hard", "feather", "motion"} and len(set(blend)) >= 3
    feather, motion = blend == "feather", blend == "motion"
    assert np.all((column["feather_sigma"][feather] >= 0.5) & (column["feather_sigma"][feather] <= 3))
    assert np.all(column["feather_sigma"][~feather] == 0)
    assert np.all((column["motion_length"][motion] >= 2) & (column["motion_length"][motion] <= 9))
    assert np.all(column["motion_length"][~motion] == 0) and np.all(column["motion_angle"][~motion] == 0)
    assert np.all((column["motion_angle"] >= 0) & (column["motion_angle"] <= 180))
    assert np.all((column["shadow_opacity"] >= 0) & (column["shadow_opacity"] <= 0.6))
    for row in rows:
        reach = max(1, round(0.08 * row["scale"] * R)) + 1  # `scale`: the cut-out's longer side / R (+1: rounding)
        assert abs(row["shadow_dx"]) <= reach and 0 <= row["shadow_dy"] <= reach, row["sample_id"]
        assert 0.5 <= row["shadow_sigma"] <= 0.5 + reach, row["sample_id"]


def test_background_content_moved_by_bg_dx_and_bg_dy(tmp_path, inputs):
    """Away from the borders and the cut-out, the composite is the clean background rolled by (bg_dx, bg_dy):
    the best of every shift in [-8, 8]^2 is the stored one."""
    rows, backgrounds = generate(tmp_path, inputs, bg_shift=8)
    shifts = [(dx, dy) for dy in range(-8, 9) for dx in range(-8, 9)]
    for row in rows:
        composite, background = np.asarray(row["fg_bg"], dtype=np.float64), backgrounds[row["bg_id"]]
        inside = np.zeros((R, R), bool)
        inside[8:-8, 8:-8] = True
        inside &= np.asarray(row["alpha"]) == 0
        errors = [np.abs(composite - np.roll(background, (dy, dx), axis=(0, 1)))[inside].mean() for dx, dy in shifts]
        assert shifts[int(np.argmin(errors))] == (row["bg_dx"], row["bg_dy"]), row["sample_id"]
    assert {row["bg_dx"] < 0 for row in rows} == {True, False}


def test_the_shadow_falls_on_the_side_its_offset_says(tmp_path, inputs):
    """The darkening outside the cut-out (composite darker than the clean background) lies, from the cut-out's
    centre, in the direction of (shadow_dx, shadow_dy)."""
    rows, backgrounds = generate(tmp_path, inputs, shadow=1.0)
    yy, xx = np.mgrid[:R, :R]
    checked = 0
    for row in rows:
        offset = np.array([row["shadow_dx"], row["shadow_dy"]], dtype=np.float64)
        if row["shadow_opacity"] < 0.4 or np.hypot(*offset) < 2:
            continue
        alpha = np.asarray(row["alpha"], dtype=np.float64)
        dark = (backgrounds[row["bg_id"]] - np.asarray(row["fg_bg"], dtype=np.float64)).mean(axis=2)
        weight = np.clip(dark - 12, 0, None) * (alpha == 0)
        centre = np.array([(xx * alpha).sum(), (yy * alpha).sum()]) / alpha.sum()
        shadow = np.array([(xx * weight).sum(), (yy * weight).sum()]) / weight.sum()
        assert np.dot(shadow - centre, offset) > 0, (row["sample_id"], shadow - centre, offset)
        checked += 1
    assert checked >= 5


def test_the_feathered_edge_widens_with_feather_sigma(tmp_path, inputs):
    """The band of partly transparent alpha, per unit of the cut-out's size, grows with feather_sigma."""
    rows, _ = generate(tmp_path, inputs, blend_modes="feather", feather=6)
    sigma = np.array([row["feather_sigma"] for row in rows])
    alpha = [np.asarray(row["alpha"]) for row in rows]
    band = np.array([((a > 0) & (a < 250)).sum() / np.sqrt((a > 0).sum()) for a in alpha])
    ranks = lambda values: np.argsort(np.argsort(values))  # noqa: E731 - Spearman's rank correlation below
    assert np.corrcoef(ranks(sigma), ranks(band))[0, 1] > 0.6, list(zip(sigma.round(2), band.round(2)))
