"""The scene-geometry functions on hand-made disparity maps: ground detection, foot sampling, scale, depth test."""

from __future__ import annotations

import numpy as np

from builder.contract.plan import Placement, placed_size
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
    """A tall cut-out at large scales: far feet (near the horizon) would push its top out of the frame. The feet are
    exactly the ground pixels where the placed box (builder.contract.plan.placed_size) fits, for tall, wide and
    square cut-outs."""
    bg = g.BackgroundGround.of(with_box(floor_scene(), 40, 50, 30, 45))
    scales = g.ground_scale(bg.disparity, bg.low, bg.high, 0.5, 0.9)
    for fg_height, fg_width in ((40, 20), (20, 40), (33, 33), (7, 50)):
        feet = g.GroundFeet.of(bg, scales).feasible(fg_height, fg_width)
        expected = []
        for y, x in zip(*np.nonzero(bg.ground)):
            height, width = placed_size(float(scales[y, x]), fg_height, fg_width, R)
            if x - width // 2 >= 0 and x - width // 2 + width <= R and y - height + 1 >= 0:
                expected.append(y * R + x)
        assert feet.tolist() == expected and 0 < feet.size < bg.ground.sum()


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
