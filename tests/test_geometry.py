"""The scene-geometry functions on hand-made disparity maps: ground detection, foot sampling, scale, depth test."""

from __future__ import annotations

import numpy as np

from builder.contract.plan import Placement
from builder.rows import geometry as g

R = 64


def floor_scene(horizon: int = 24) -> np.ndarray:
    """Sky (disparity 0) above the horizon, a floor plane below: disparity linear in the row."""
    rows = np.arange(R, dtype=np.float64)
    return np.repeat(np.clip((rows - horizon + 1) / (R - horizon), 0, None)[:, None], R, axis=1)


def with_box(disparity: np.ndarray, x0: int, x1: int, top: int, base: int) -> np.ndarray:
    """A block standing on the floor at row `base`: a front face at the floor's disparity there."""
    out = disparity.copy()
    out[top:base + 1, x0:x1] = disparity[base, 0]
    return out


def test_floor_is_ground_sky_and_box_faces_are_not():
    scene = with_box(floor_scene(), 10, 30, 30, 50)
    ground = g.ground_mask(scene)
    w = g.window(R)
    assert not ground[:24].any()  # sky
    assert ground[24 + w:R - w, 40:].all()  # open floor
    assert not ground[30:51, 10 + w:30 - w].any()  # the box's front face
    assert not ground[R - w:].any()


def test_ground_rule_is_invariant_to_affine_disparity():
    scene = with_box(floor_scene(), 10, 30, 30, 50)
    assert np.array_equal(g.ground_mask(scene), g.ground_mask(scene * 1024))  # exact in floating point
    assert np.array_equal(g.ground_mask(scene), g.ground_mask(scene / 1024))
    floor = floor_scene()  # no exact ties (a box's base row is one): a shift changes nothing either
    assert np.array_equal(g.ground_mask(floor), g.ground_mask(floor * 1234.5 + 17))


def test_ceiling_and_walls_are_not_ground():
    ceiling = floor_scene()[::-1]  # disparity falls downward
    wall = np.repeat(np.linspace(0, 1, R)[None, :], R, axis=0)  # a side wall: constant down each column
    assert not g.ground_mask(ceiling).any()
    assert not g.ground_mask(wall).any()


def test_unknown_pixels_are_never_ground():
    scene = floor_scene()
    scene[40:44, 20:24] = np.nan
    ground = g.ground_mask(scene)
    assert not ground[40:44, 20:24].any()
    assert ground[50, 50]


def test_scale_maps_ground_range_and_rises_with_disparity():
    assert g.ground_scale(0.2, 0.2, 0.8, 0.3, 0.6) == np.float32(0.3)
    assert g.ground_scale(0.8, 0.2, 0.8, 0.3, 0.6) == np.float32(0.6)
    assert g.ground_scale(0.5, 0.2, 0.8, 0.3, 0.6) == np.float32(0.45)
    assert g.ground_scale(5.0, 0.2, 0.8, 0.3, 0.6) == np.float32(0.6)  # clipped
    scales = g.ground_scale(np.linspace(0, 1, 50), 0.2, 0.8, 0.3, 0.6)
    assert (np.diff(scales) >= 0).all() and scales.dtype == np.float32


def test_feet_fit_the_frame_and_stand_on_ground():
    """A tall cut-out at large scales: far feet (near the horizon) would push its top out of the frame."""
    bg = g.BackgroundGround.of(floor_scene())
    feet = g.feasible_feet(bg, 40, 20, 0.5, 0.9)
    assert 0 < feet.size < bg.ground.sum() and bg.ground.ravel()[feet].all()
    for flat in feet:
        y, x = divmod(int(flat), R)
        scale = float(g.ground_scale(bg.disparity[y, x], bg.low, bg.high, 0.5, 0.9))
        longer = round(scale * R)
        width = max(1, round(20 * longer / 40))
        assert x - width // 2 >= 0 and x - width // 2 + width <= R and y - longer + 1 >= 0


def test_place_on_ground_draws_from_own_stream_and_stands_on_the_foot():
    bg = g.BackgroundGround.of(floor_scene())
    feet = g.feasible_feet(bg, 40, 20, 0.3, 0.6)
    alpha = lambda p: np.full((p.height, p.width), 255, np.uint8)  # noqa: E731
    a = g.place_on_ground(bg, feet, 5, 17, (40, 20), 0.3, 0.6, alpha, 128)
    b = g.place_on_ground(bg, feet, 5, 17, (40, 20), 0.3, 0.6, alpha, 128)
    assert a.placement == b.placement and a.mode == "ground"
    foot = int(feet[np.random.default_rng([5, 17, 2]).integers(0, feet.size)])
    assert (a.foot_y, a.foot_x) == divmod(foot, R)
    assert g.foot_of(a.placement) == (a.foot_x, a.foot_y)
    feet_y = [g.place_on_ground(bg, feet, 5, i, (40, 20), 0.3, 0.6, alpha, 128) for i in range(40)]
    by_row = sorted((p.foot_y, p.placement.scale) for p in feet_y)
    assert [s for _, s in by_row] == sorted(s for _, s in by_row)  # lower foot (nearer) -> larger


def test_near_box_hides_part_of_a_cut_out_behind_it():
    scene = with_box(floor_scene(), 0, 20, 30, 60)  # block face rows 30..60, cols 0..19, near (base row 60)
    bg = g.BackgroundGround.of(scene)
    foot_y, foot_x = 45, 25  # floor behind: farther than the block
    hidden = g.nearer_scenery(bg, scene[foot_y, foot_x])
    placement = Placement(15, 26, 0.3, 20, 20)  # box x 15..34, y 26..45
    footprint = np.full((20, 20), True)
    visible = g.hide(np.full((20, 20, 4), 255, np.uint8), placement, hidden)[..., 3] > 0
    expected = np.ones((20, 20), bool)
    expected[30 - 26:, :20 - 15] = False  # where the block covers the box
    assert np.array_equal(visible, expected)
    fraction = g.visible_fraction(footprint, placement, hidden)
    assert fraction == expected.mean()
    amodal = np.where(footprint, 255, 0)
    assert g.occlusion(amodal, np.where(visible, 255, 0)) == np.float32(1 - expected.mean())


def test_unknown_pixels_never_hide():
    scene = floor_scene()
    scene[10:20, 10:20] = np.nan
    bg = g.BackgroundGround.of(scene)
    assert not g.nearer_scenery(bg, 0.0)[10:20, 10:20].any()


def test_mostly_hidden_cut_out_is_redrawn_and_bounded():
    scene = floor_scene()
    scene[28:42] = 2.0  # a near rail across the frame: feet just in front of it stand mostly behind it
    bg = g.BackgroundGround.of(scene)
    feet = g.feasible_feet(bg, 10, 10, 0.2, 0.3)
    alpha = lambda p: np.full((p.height, p.width), 255, np.uint8)  # noqa: E731
    placements = [g.place_on_ground(bg, feet, 0, i, (10, 10), 0.2, 0.3, alpha, 128) for i in range(60)]
    assert all(1 <= p.tries <= g.MAX_TRIES for p in placements)
    assert any(p.tries > 1 for p in placements)
    for p in placements:
        fraction = g.visible_fraction(np.ones((p.placement.height, p.placement.width), bool), p.placement, p.hidden)
        assert fraction >= g.MIN_VISIBLE or p.tries == g.MAX_TRIES


def test_too_little_ground_gives_no_placement():
    flat = np.tile(np.linspace(0, 1, R)[None, :], (R, 1))  # no vertical change anywhere
    bg = g.BackgroundGround.of(flat)
    assert not bg.usable
    alpha = lambda p: np.full((p.height, p.width), 255, np.uint8)  # noqa: E731
    assert g.place_on_ground(bg, g.feasible_feet(bg, 10, 10, 0.3, 0.6), 0, 0, (10, 10), 0.3, 0.6, alpha, 128) is None
