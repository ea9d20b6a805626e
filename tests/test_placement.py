"""builder.rows.placement: the rules on hand-made disparity maps (the foot draw's own stream, the size laws, redraws,
the uniform fallback), and the rule the settings choose."""

from __future__ import annotations

import numpy as np

from builder.contract.plan import draw_placement
from builder.contract.settings import ContentSettings, PhysicalInputs
from builder.rows import geometry as g
from builder.rows.placement import GroundRule, PhysicalRule, PlacementInputs, UniformRule, focal_at, placement_rule
from tests.test_geometry import R, floor_scene, with_box


def opaque(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 4), 255, np.uint8)


def placement_inputs(cutouts, cutout_at, ground_of=None, physical=None, focal_of=None) -> PlacementInputs:
    """PlacementInputs over decoded cut-outs (a list, or a dict by id)."""
    by_id = dict(cutouts.items() if isinstance(cutouts, dict) else enumerate(cutouts))
    return PlacementInputs({k: c.shape[:2] for k, c in by_id.items()}, by_id.__getitem__, cutout_at, ground_of,
                           physical, focal_of)


def ground_rule(disparity: np.ndarray, fg_shape: tuple[int, int], **settings) -> GroundRule:
    """The ground rule over one background (`disparity`) and one fully opaque cut-out of `fg_shape`."""
    bg = g.BackgroundGround.of(disparity)
    inputs = placement_inputs({0: opaque(*fg_shape)}, lambda fg, flip, p: opaque(p.height, p.width), lambda b: bg)
    return GroundRule(ContentSettings(resolution=R, placement_mode="ground", **settings), inputs)


def test_the_settings_choose_the_rule():
    inputs = placement_inputs([opaque(4, 4)], lambda fg, flip, p: opaque(p.height, p.width))
    assert isinstance(placement_rule(ContentSettings(resolution=R), inputs), UniformRule)
    assert isinstance(placement_rule(ContentSettings(resolution=R, placement_mode="ground"), inputs), GroundRule)
    assert isinstance(placement_rule(ContentSettings(resolution=R, placement_mode="physical"), inputs), PhysicalRule)


def test_ground_foot_draws_from_its_own_stream_and_stands_on_the_foot():
    rule = ground_rule(floor_scene(), (40, 20), seed=5, scale_min=0.3, scale_max=0.6)
    a, b = rule.place(17, 0, 0, 0), rule.place(17, 0, 0, 0)
    assert a.placement == b.placement and a.mode == "ground"
    feet = rule.sized(0, 0)[1]
    foot = int(feet[np.random.default_rng([5, 17, 2]).integers(0, feet.size)])
    assert a.foot[::-1] == divmod(foot, R) and a.fields == {"foot_x": a.foot[0], "foot_y": a.foot[1]}
    assert g.foot_of(a.placement) == a.foot
    placed = [rule.place(i, 0, 0, 0) for i in range(40)]
    by_row = sorted((p.foot[1], p.placement.scale) for p in placed)
    assert [s for _, s in by_row] == sorted(s for _, s in by_row)  # lower foot (nearer) -> larger
    assert all(p.nearness == rule.ground(0).disparity[p.foot[1], p.foot[0]] for p in placed)


def test_ground_feet_kept_per_background_within_a_bound(monkeypatch):
    """Drawn rows change background and cut-out every row: the feet kept per background (least recently used
    dropped beyond KEPT_BYTES) give the placements a fresh rule gives."""
    scenes = [with_box(floor_scene(horizon), 5 + horizon, 20 + horizon, 20, 40) for horizon in (16, 24, 30)]
    grounds = [g.BackgroundGround.of(scene) for scene in scenes]
    shapes = {0: opaque(40, 20), 1: opaque(20, 40), 2: opaque(30, 30)}

    def rule() -> GroundRule:
        inputs = placement_inputs(shapes, lambda fg, flip, p: opaque(p.height, p.width), grounds.__getitem__)
        return GroundRule(ContentSettings(resolution=R, placement_mode="ground"), inputs)

    monkeypatch.setattr(GroundRule, "KEPT_BYTES", 100_000)  # room for one background's feet (77 kB) only
    kept, draws = rule(), np.random.default_rng(0).integers(0, 3, size=(30, 2))
    for index, (bg_id, fg_id) in enumerate(draws):
        a, b = kept.place(index, int(bg_id), int(fg_id), 0), rule().place(index, int(bg_id), int(fg_id), 0)
        assert (a.placement, a.foot, a.tries, a.mode) == (b.placement, b.foot, b.tries, b.mode)
    assert len(kept._feet) == 1 and kept._feet_bytes <= GroundRule.KEPT_BYTES


def test_mostly_hidden_cut_out_is_redrawn_and_bounded():
    scene = floor_scene()
    scene[28:42] = 2.0  # a near rail across the frame: feet just in front of it stand mostly behind it
    rule = ground_rule(scene, (10, 10), scale_min=0.2, scale_max=0.3)
    placements = [rule.place(i, 0, 0, 0) for i in range(60)]
    assert all(1 <= p.tries <= g.MAX_TRIES for p in placements)
    assert any(p.tries > 1 for p in placements)
    for p in placements:
        fraction = g.visible_fraction(np.ones((p.placement.height, p.placement.width), bool), p.placement, p.hidden)
        assert fraction >= g.MIN_VISIBLE or p.tries == g.MAX_TRIES


def test_too_little_ground_falls_back_to_the_uniform_draw_and_says_so():
    flat = np.tile(np.linspace(0, 1, R)[None, :], (R, 1))  # no vertical change anywhere
    rule = ground_rule(flat, (10, 10))
    placed = rule.place(3, 0, 0, 0)
    assert placed.mode == "uniform" and placed.hidden is None and placed.nearness == float("inf")
    assert placed.placement == draw_placement(0, 3, 10, 10, R, 0.3, 0.6)  # the row's uniform stream
    assert placed.foot == g.foot_of(placed.placement)
    scene_rng, again = np.random.default_rng(9), np.random.default_rng(9)  # a scene's object: the scene's stream
    assert rule.place(3, 0, 0, 0, scene_rng).placement == draw_placement(0, 3, 10, 10, R, 0.3, 0.6, rng=again)


def test_physical_size_law_and_the_focal_length_at_r():
    """A floor 2 m away at the bottom row (1/Z linear in the row), f = 300 px on a 600 x 400 original: f_R =
    300 * 64 / 400 = 48 px; a 1 m tall cut-out then stands f_R / Z px tall, where that is within the scale range."""
    assert focal_at(300.0, (600, 400), 64) == focal_at(300.0, (400, 600), 64) == 48.0
    disparity = floor_scene() / 2.0  # 1/metres: 0.5 at the bottom row
    bg = g.BackgroundGround.of(disparity)
    cutout = opaque(40, 20)
    inputs = placement_inputs({0: cutout}, lambda fg, flip, p: opaque(p.height, p.width), lambda b: bg,
                             PhysicalInputs(((600, 400),), (1.0,)))
    rule = PhysicalRule(ContentSettings(resolution=R, placement_mode="physical", focal_px=300.0, scale_min=0.2,
                                        scale_max=0.35), inputs)
    scales = rule.size_law(0, 0)
    target = 48.0 * disparity  # f_R * H / Z
    sized = np.isfinite(scales)
    assert sized.any() and (bg.ground | ~sized).all()
    in_range = (target >= 0.2 * R) & (target <= 0.35 * R) & bg.ground  # an opaque 2:1 cut-out: longer = height
    assert np.array_equal(sized, in_range)
    assert np.abs(np.round(scales[sized] * R) - target[sized]).max() <= 0.5
    placed = rule.place(0, 0, 0, 0)
    assert placed.mode == "physical" and placed.fields["height_m"] == 1.0


def test_physical_rule_takes_the_stored_focal_length_without_focal_px():
    """Without --focal-px the background's stored focal length (already at R, a depth model's field of view) is
    f_R, per background; with --focal-px given, that wins and the stored one is not read."""
    disparity = floor_scene() / 2.0
    bg = g.BackgroundGround.of(disparity)
    stored = {0: 48.0, 1: 30.0}
    physical = PhysicalInputs(((600, 400), (600, 400)), (1.0,), from_field_of_view=True)

    def rule(focal_of, **settings) -> PhysicalRule:
        inputs = placement_inputs({0: opaque(40, 20)}, lambda fg, flip, p: opaque(p.height, p.width), lambda b: bg,
                                  physical, focal_of)
        return PhysicalRule(ContentSettings(resolution=R, placement_mode="physical", scale_min=0.2, scale_max=0.35,
                                            **settings), inputs)

    by_focal_px = rule(None, focal_px=300.0).size_law(0, 0)  # f_R = 48 from the original's 400 px shorter side
    by_stored = rule(stored.__getitem__)
    assert by_stored.focal(0) == 48.0 and by_stored.focal(1) == 30.0
    np.testing.assert_array_equal(by_stored.size_law(0, 0), by_focal_px)
    smaller = by_stored.size_law(1, 0)
    sized = np.isfinite(smaller)
    assert sized.any() and np.abs(np.round(smaller[sized] * R) - 30.0 * disparity[sized]).max() <= 0.5

    def unread(bg_id: int) -> float:
        raise AssertionError("--focal-px given: the stored focal length is not read")

    np.testing.assert_array_equal(rule(unread, focal_px=300.0).size_law(0, 0), by_focal_px)
