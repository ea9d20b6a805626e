"""builder.rows.scene on hand-made layers: paste order by disparity, visible pixels, instance ids, the union mask, and
the redraw and drop of hidden objects."""

from __future__ import annotations

import numpy as np

from builder.contract.plan import Placement
from builder.rows.geometry import MAX_TRIES
from builder.rows.scene import (Scene, SceneObject, draw_scene, instance_mask, paste_order, paste_scene, visible_layers,
                                visible_shares)

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
    cutout = lambda o: square(o.placement.width, 50)  # noqa: E731
    draws = []

    def covering_then_aside(fg_id, flip, rng):  # the first draw covers object 1 whole, the next one does not
        draws.append(fg_id)
        return obj(fg_id, 0, 0, 4) if len(draws) == 1 else obj(fg_id, 4, 4, 4)

    scene = draw_scene(first, 0, 7, (2, 2), (0, 1, 2), covering_then_aside, cutout, R, 128)
    assert [o.placement.x for o in scene.objects] == [0, 4] and (scene.redrawn, scene.dropped) == (1, 0)
    assert set(draws) <= {1, 2}  # never object 1's own cut-out again

    def always_covering(fg_id, flip, rng):
        return obj(fg_id, 0, 0, 4)

    scene = draw_scene(first, 0, 7, (3, 3), (0, 1, 2), always_covering, cutout, R, 128)
    assert len(scene.objects) == 1 and (scene.redrawn, scene.dropped) == (2 * (MAX_TRIES - 1), 2)


def test_further_cut_outs_are_distinct_and_from_the_split_only():
    first = obj(5, 0, 0, 1)
    for index in range(30):
        scene = draw_scene(first, 3, index, (3, 4), (2, 5, 9, 11),
                           lambda fg_id, flip, rng: obj(fg_id, int(rng.integers(0, R)), int(rng.integers(0, R)), 1),
                           lambda o: square(1, 9), R, 128)
        ids = [o.fg_id for o in scene.objects]
        assert ids[0] == 5 and set(ids) <= {2, 5, 9, 11} and len(set(ids)) == len(ids) and 3 <= len(ids) + scene.dropped
