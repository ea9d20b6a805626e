"""builder.rows.scene on hand-made layers: paste order by disparity, visible pixels, instance ids, the union mask, the
redraw and drop of hidden objects, and `--augment` scenes (one object as augmented_composite, alphas composed,
shadows on the ground, the redraw test on the final alpha)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from builder.contract.plan import Placement, draw_placement
from builder.contract.settings import ContentSettings
from builder.rows.augment import Augmentation, augmented_composite, draw_augmentation, object_layer, perturb_background
from builder.rows.geometry import MAX_TRIES, MIN_VISIBLE
from builder.rows.placement import PlacementInputs, UniformRule
from builder.rows.scene import (AugmentedLayers, Scene, SceneObject, derive_scene, draw_scene, footprint, instance_mask,
                                paste_order, paste_scene, placer, visible_layers, visible_shares)

R = 8


def obj(fg_id: int, x: int, y: int, size: int, depth: float = 0.0, hidden: np.ndarray | None = None) -> SceneObject:
    return SceneObject(fg_id, 0, Placement(x, y, 0.5, size, size), None, hidden, depth)


def square(size: int, colour: int) -> np.ndarray:
    """An opaque premultiplied cut-out of one grey level."""
    out = np.full((size, size, 4), 255, dtype=np.uint8)
    out[..., :3] = colour
    return out


def layer(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    out = np.zeros((R, R), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def test_paste_order_is_back_to_front_by_disparity_then_drawing_order():
    objects = [obj(0, 0, 0, 1, depth=5.0), obj(1, 0, 0, 1, depth=1.0), obj(2, 0, 0, 1, depth=float("inf")),
               obj(3, 0, 0, 1, depth=3.0), obj(4, 0, 0, 1, depth=1.0)]
    assert paste_order(objects) == [1, 4, 3, 0, 2]
    assert paste_order([obj(k, 0, 0, 1) for k in range(4)]) == [0, 1, 2, 3]  # uniform: drawing order


def test_nearer_objects_cover_farther_ones_and_ids_follow_the_list():
    seen = [layer(0, 0, 4, 4), layer(2, 2, 6, 6), layer(3, 0, 8, 3)]
    visible = visible_layers(seen, [1, 0, 2])  # object 2 (index 1) is farthest, then object 1, then object 3
    assert np.array_equal(visible[2], seen[2])
    assert np.array_equal(visible[0], seen[0] & ~seen[2])
    assert np.array_equal(visible[1], seen[1] & ~seen[0] & ~seen[2])
    ids = instance_mask(visible)
    assert ids[0, 0] == 1 and ids[5, 5] == 2 and ids[1, 3] == 3 and ids[7, 0] == 0 and ids[3, 3] == 1
    assert visible_shares(seen, visible) == [13 / 16, 10 / 16, 1.0]


def test_paste_scene_composites_back_to_front_with_scenery_hiding_both():
    background = np.zeros((R, R, 3), dtype=np.uint8)
    scenery = layer(0, 6, 8, 8)  # nearer than both feet: hides their bottom rows
    far, near = obj(0, 0, 0, 7, depth=1.0, hidden=scenery), obj(1, 3, 3, 5, depth=2.0, hidden=scenery)
    scene = Scene((near, far), 0, 0)  # drawn near first: the paste order is still far, then near
    images = paste_scene(background, scene, [square(5, 200), square(7, 100)], 128)
    assert images.image[1, 1, 0] == 100 and images.image[4, 4, 0] == 200 and images.image[7, 4, 0] == 0
    assert images.instances[1, 1] == 2 and images.instances[4, 4] == 1 and images.instances[7, 4] == 0
    assert np.array_equal(images.mask, np.where(images.instances > 0, 255, 0))
    assert images.mask[:6].sum() and not images.mask[6:].any()
    assert images.bbox(0) == [3, 3, 8, 6] and images.bbox(1) == [0, 0, 7, 6]
    assert images.occlusion(0) == np.float32(1 - 15 / 25)  # amodal 5 x 5, 3 x 5 left by the scenery


def test_a_hiding_draw_is_redrawn_and_one_never_visible_is_dropped():
    first = obj(0, 0, 0, 4)
    cutout = lambda o: footprint(o, square(o.placement.width, 50), R, 128)  # noqa: E731
    draws = []

    def covering_then_aside(fg_id, flip, rng):  # the first draw covers object 1 whole, the next one does not
        draws.append(fg_id)
        return obj(fg_id, 0, 0, 4) if len(draws) == 1 else obj(fg_id, 4, 4, 4)

    scene = draw_scene(first, 0, 7, (2, 2), (0, 1, 2), covering_then_aside, cutout)
    assert [o.placement.x for o in scene.objects] == [0, 4] and (scene.redrawn, scene.dropped) == (1, 0)
    assert set(draws) <= {1, 2}  # never object 1's own cut-out again

    def always_covering(fg_id, flip, rng):
        return obj(fg_id, 0, 0, 4)

    scene = draw_scene(first, 0, 7, (3, 3), (0, 1, 2), always_covering, cutout)
    assert len(scene.objects) == 1 and (scene.redrawn, scene.dropped) == (2 * (MAX_TRIES - 1), 2)


def test_further_cut_outs_are_distinct_and_from_the_split_only():
    first = obj(5, 0, 0, 1)
    for index in range(30):
        scene = draw_scene(first, 3, index, (3, 4), (2, 5, 9, 11),
                           lambda fg_id, flip, rng: obj(fg_id, int(rng.integers(0, R)), int(rng.integers(0, R)), 1),
                           lambda o: footprint(o, square(1, 9), R, 128))
        ids = [o.fg_id for o in scene.objects]
        assert ids[0] == 5 and set(ids) <= {2, 5, 9, 11} and len(set(ids)) == len(ids) and 3 <= len(ids) + scene.dropped


# --------------------------------------------------------------------------------------------- --augment scenes

def identity(**changes) -> Augmentation:
    """Parameters that change nothing (no jitter, rotation, blur, noise or shadow), with `changes`."""
    base = dict(bg_brightness=1.0, bg_contrast=1.0, bg_saturation=1.0, bg_hue=0.0, bg_dx=0, bg_dy=0,
                bg_blur_radius=0.0, bg_noise_sigma=0.0, noise_seed=0, fg_angle=0.0, fg_brightness=1.0,
                fg_contrast=1.0, fg_saturation=1.0, fg_hue=0.0, harmonize_strength=0.0, blend="alpha",
                feather_sigma=0.0, motion_length=0, motion_angle=0.0, shadow_opacity=0.0, shadow_dx=0, shadow_dy=0,
                shadow_sigma=0.5)
    return Augmentation(**{**base, **changes})


def soft_disc(size: int) -> np.ndarray:
    """A premultiplied disc with a soft rim, coloured by position (so a rotation shows)."""
    yy, xx = np.mgrid[:size, :size]
    alpha = np.clip((size / 2 - np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)) * 80, 0, 255).astype(np.uint8)
    colour = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], -1)
    return np.concatenate([(colour * alpha[..., None] // 255).astype(np.uint8), alpha[..., None]], -1)


@pytest.mark.parametrize("ground", [False, True])
def test_one_augmented_object_is_pasted_as_augmented_composite(ground):
    """The scene path with one object gives augmented_composite's image and alpha exactly (hidden and foot in
    ground mode), so one object and several share one definition of a realistic paste."""
    size = 40
    background = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    placement, cut = Placement(9, 7, 0.5, 18, 18), soft_disc(18)
    settings = ContentSettings(augment="realistic", resolution=size, fg_rotation=40, blend_modes="motion,feather")
    hidden = layer_of(size, 0, 20, size, size) if ground else None
    foot = (18, 24) if ground else None
    for index in range(6):
        params = draw_augmentation(settings, index, placement)
        first = SceneObject(3, 0, placement, foot, hidden, 1.0, params)
        images = AugmentedLayers(background, params, lambda *_: cut, 128).paste(Scene((first,), 0, 0))
        image, alpha = augmented_composite(background, cut, placement, params, 128, hidden, foot)
        assert np.array_equal(images.image, image)
        assert np.array_equal(images.footprints[0], alpha >= 128)
        assert np.array_equal(images.alpha, alpha if hidden is None else np.where(hidden, 0, alpha))


def layer_of(size: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def test_augmented_alphas_compose_back_to_front_and_shadows_fall_on_the_ground():
    background = np.full((R, R, 3), 200, dtype=np.uint8)
    half = np.zeros((4, 4, 4), dtype=np.uint8)
    half[...] = (40, 40, 40, 128)  # premultiplied: colour 80 at alpha 128
    opaque = square(4, 60)
    dark = identity(shadow_opacity=1.0, shadow_dx=-2, shadow_dy=0)  # its shadow falls 2 px left, fully dark
    far, near = SceneObject(0, 0, Placement(0, 0, 1.0, 4, 4), None, None, 0.0, identity()), \
        SceneObject(1, 0, Placement(2, 0, 1.0, 4, 4), None, None, 0.0, dark)
    cutouts = {0: opaque, 1: half}
    images = AugmentedLayers(background, identity(), lambda fg, flip, p: cutouts[fg], 128).paste(
        Scene((far, near), 0, 0))
    assert images.alpha[1, 1] == 255 and images.alpha[1, 3] == 255 and images.alpha[1, 5] == 128
    assert images.image[1, 1].tolist() == [60] * 3  # the far cut-out takes no shadow of the near one
    assert images.image[1, 3].tolist() == [40 + (60 * 127 + 127) // 255] * 3  # the near one, half over the far one
    assert images.image[1, 7].tolist() == [200] * 3 and images.image[5, 1].tolist() == [200] * 3
    assert images.instances[1, 1] == 1 and images.instances[1, 3] == 2 and images.instances[1, 6] == 0
    alone = AugmentedLayers(background, identity(), lambda fg, flip, p: half, 128).paste(
        Scene((SceneObject(1, 0, Placement(2, 0, 1.0, 4, 4), None, None, 0.0, identity()),
               SceneObject(2, 0, Placement(4, 0, 1.0, 4, 4), None, None, 0.0, identity())), 0, 0))
    assert alone.alpha[1, 3] == 128 and alone.alpha[1, 5] == 128 + (128 * 127 + 127) // 255  # two halves: 192


def test_augmented_scenes_keep_every_object_visible_by_its_final_alpha():
    """The redraw test reads each object's final alpha (rotated, edge blended), not the plain cut-out's: every
    listed object keeps MIN_VISIBLE of that footprint, each footprint is its layer's alpha, and the scenes differ
    from those the plain footprints would give (cut-outs opaque in their top band only, turned up to 180 degrees)."""
    settings = ContentSettings(augment="realistic", resolution=48, objects="3-4", fg_rotation=180, scale_min=0.6,
                               scale_max=0.9, blend_modes="motion,hard", motion=9)
    bands = []
    for k in range(6):
        band = np.zeros((20, 20, 4), dtype=np.uint8)
        band[:7] = (30 * k, 30 * k, 30 * k, 255)
        bands.append(band)
    cutout_at = functools.lru_cache(maxsize=None)(
        lambda fg, flip, p: np.asarray(Image.fromarray(bands[fg], "RGBa").resize((p.width, p.height))))
    background, differs = np.zeros((48, 48, 3), dtype=np.uint8), 0
    rule = UniformRule(settings, PlacementInputs([b.shape[:2] for b in bands], bands.__getitem__, cutout_at))
    for index in range(30):
        placement = draw_placement(settings.seed, index, 20, 20, 48, 0.6, 0.9)
        first = SceneObject(0, 0, placement, None, None, 0.0, draw_augmentation(settings, index, placement))
        scene, images = derive_scene(settings, index, first, background, tuple(range(6)), rule, 0)
        assert min(visible_shares(images.footprints, images.visible)) >= MIN_VISIBLE, index
        for obj, seen in zip(scene.objects, images.footprints):
            layer = object_layer(cutout_at(obj.fg_id, obj.flip, obj.placement), obj.placement, obj.augmentation,
                                 perturb_background(background, first.augmentation), 128)
            assert np.array_equal(seen, layer.alpha(48) >= 128)
        plain = draw_scene(first, settings.seed, index, settings.object_range, tuple(range(6)),
                           placer(settings, index, rule, 0),
                           lambda o: footprint(o, cutout_at(o.fg_id, o.flip, o.placement), 48, 128))
        differs += [o.placement for o in plain.objects] != [o.placement for o in scene.objects]
    assert differs > 0
