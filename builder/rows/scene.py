"""Several cut-outs per composite (`--objects A-B`): which further cut-outs a row holds, where they go, in which
order they are pasted, and which pixels of each stay visible. Pure functions shared by the renderer and verify.

A scene's object 1 is the row's own cut-out, placed as a one-object row places it. The others are drawn from
the row's own stream `default_rng([seed, index, 3])` (the existing streams are left untouched): first their
count, then for each, which cut-out (distinct, from the row's split only), its flip and its placement (by the
row's placement rule, builder.rows.placement, from the same stream). Paste order: back to front by foot disparity
with a standing rule (a cut-out it placed uniformly, for too little ground, counts as nearest), drawing order
otherwise.
A drawn object is accepted when every object of the scene keeps at least MIN_VISIBLE of the pixels that nearer
scenery leaves it; otherwise it is redrawn, at most MAX_TRIES draws in all, then dropped. With `--augment`, each
further object's parameters are drawn right after its placement, and its pixels are those of its final (rotated,
edge-blended) alpha.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from builder.contract.plan import Placement
from builder.contract.settings import ContentSettings
from builder.rows.augment import (Augmentation, ObjectLayer, draw_parameters, object_alpha, object_layer,
                                  perturb_background, shade)
from builder.rows.composite import mask_bbox, paste_over
from builder.rows.geometry import MAX_TRIES, MIN_VISIBLE, hide, occlusion
from builder.rows.placement import CutoutAt, Placed, PlacementRule

SCENE_STREAM = 3  # default_rng([seed, index, 3]): the further objects of row `index`


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One pasted cut-out: which, where, and what scenery hides it (None: nothing, e.g. uniform placement)."""

    fg_id: int
    flip: int
    placement: Placement
    foot: tuple[int, int] | None  # a standing rule: where it stands
    hidden: np.ndarray | None  # R x R bool: scenery nearer than its foot
    depth: float  # paste-order key: larger is nearer (its foot's disparity with a standing rule, else 0)
    augmentation: Augmentation | None = None  # --augment: its parameters (object 1's background part is the row's)
    fields: dict = dataclasses.field(default_factory=dict)  # its placement rule's fields (foot_x, foot_y, ...)


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # drawing order: object 1 first; instance id k is objects[k - 1]
    redrawn: int  # draws rejected for hiding an object (or being hidden) below MIN_VISIBLE
    dropped: int  # objects given up after MAX_TRIES draws


# (cut-out, flip, rng) -> the object placed by the row's placement rule, drawing from rng
Place = Callable[[int, int, np.random.Generator], SceneObject]
# object -> R x R bool, its whole footprint as pasted (what scenery hides included)
Footprint = Callable[[SceneObject], np.ndarray]


def scene_object(fg_id: int, flip: int, placed: Placed, augmentation: Augmentation | None = None) -> SceneObject:
    """An object as its rule placed it: a cut-out a standing rule placed uniformly (too little ground) is hidden by
    nothing, so it is pasted nearest."""
    return SceneObject(fg_id, flip, placed.placement, placed.foot, placed.hidden, placed.nearness, augmentation,
                       placed.fields)


def placer(settings: ContentSettings, index: int, rule: PlacementRule, bg_id: int) -> Place:
    """How row `index` places a further object on background `bg_id`: by the row's rule, from the scene's stream;
    with `--augment`, its parameters are drawn next from the same stream."""
    def place(fg_id: int, flip: int, rng: np.random.Generator) -> SceneObject:
        return scene_object(fg_id, flip, rule.place(index, bg_id, fg_id, flip, rng))

    def place_augmented(fg_id: int, flip: int, rng: np.random.Generator) -> SceneObject:
        obj = place(fg_id, flip, rng)
        return dataclasses.replace(obj, augmentation=draw_parameters(settings, rng, obj.placement))

    return place_augmented if settings.with_augment else place


def footprint(obj: SceneObject, cutout: np.ndarray, resolution: int, threshold: int) -> np.ndarray:
    """R x R bool: the whole placed mask (alpha >= threshold), what scenery hides included (amodal)."""
    p, out = obj.placement, np.zeros((resolution, resolution), dtype=bool)
    out[p.y:p.y + p.height, p.x:p.x + p.width] = cutout[..., 3] >= threshold
    return out


def unhidden(obj: SceneObject, amodal: np.ndarray) -> np.ndarray:
    """The footprint less the scenery nearer than the object's foot."""
    return amodal & ~obj.hidden if obj.hidden is not None else amodal


def paste_order(objects: tuple[SceneObject, ...] | list[SceneObject]) -> list[int]:
    """Indices into `objects`, back to front: ascending depth key, drawing order among equals."""
    return sorted(range(len(objects)), key=lambda k: objects[k].depth)


def visible_layers(seen: list[np.ndarray], order: list[int]) -> list[np.ndarray]:
    """Each object's visible pixels: what scenery leaves it (`seen`), less what objects pasted after it cover."""
    visible = [np.zeros(0, dtype=bool)] * len(seen)
    covered = np.zeros(seen[0].shape, dtype=bool)
    for k in reversed(order):
        visible[k] = seen[k] & ~covered
        covered |= seen[k]
    return visible


def visible_shares(seen: list[np.ndarray], visible: list[np.ndarray]) -> list[float]:
    """Share of what scenery leaves each object that the other objects leave too (1 for an empty footprint)."""
    return [np.count_nonzero(v) / total if (total := np.count_nonzero(s)) else 1.0 for s, v in zip(seen, visible)]


def binary(layer: np.ndarray) -> np.ndarray:
    """A bool layer as a mask image: uint8 255 where set, 0 elsewhere."""
    return layer.view(np.uint8) * np.uint8(255)


def instance_mask(visible: list[np.ndarray]) -> np.ndarray:
    """uint8: k on the visible pixels of objects[k - 1], 0 on the background."""
    out = np.zeros(visible[0].shape, dtype=np.uint8)
    for k, layer in enumerate(visible, start=1):
        out[layer] = k
    return out


def draw_scene(first: SceneObject, seed: int, index: int, object_range: tuple[int, int],
               split_foregrounds: tuple[int, ...], place: Place, footprint_of: Footprint) -> Scene:
    """Row `index`'s objects, object 1 being `first` (see the module's docstring)."""
    def seen_of(obj: SceneObject) -> np.ndarray:
        return unhidden(obj, footprint_of(obj))

    rng = np.random.default_rng([seed, index, SCENE_STREAM])
    count = int(rng.integers(object_range[0], object_range[1] + 1))
    pool = [fg for fg in split_foregrounds if fg != first.fg_id]
    objects, seen, redrawn, dropped = [first], [seen_of(first)], 0, 0
    for _ in range(count - 1):
        for tries in range(1, MAX_TRIES + 1):
            fg_id = pool[int(rng.integers(0, len(pool)))]
            candidate = place(fg_id, int(rng.integers(0, 2)), rng)
            trial, trial_seen = [*objects, candidate], [*seen, seen_of(candidate)]
            if min(visible_shares(trial_seen, visible_layers(trial_seen, paste_order(trial)))) >= MIN_VISIBLE:
                objects, seen = trial, trial_seen
                pool.remove(fg_id)
                break
        else:
            dropped += 1
        redrawn += tries - 1
    return Scene(tuple(objects), redrawn, dropped)


@dataclasses.dataclass(frozen=True)
class SceneImages:
    """A scene pasted: the composite, each object's footprint and visible pixels, the union and instance masks."""

    image: np.ndarray
    footprints: list[np.ndarray]  # R x R bool, the whole placed mask (amodal)
    visible: list[np.ndarray]
    mask: np.ndarray  # uint8 255 on the union of the visible pixels
    instances: np.ndarray
    boxes: list[tuple[slice, slice]]  # each object's box, where all its pixels lie
    alpha: np.ndarray | None = None  # --augment: the objects' final alphas, unhidden parts composed back to front

    def bbox(self, k: int) -> list[int]:
        """The box of object k's visible pixels (searched in its box only: the same, faster)."""
        rows, cols = self.boxes[k]
        box = mask_bbox(self.visible[k][rows, cols])
        return [box[0] + cols.start, box[1] + rows.start, box[2] + cols.start, box[3] + rows.start] if any(box) \
            else box

    def occlusion(self, k: int) -> float:
        rows, cols = self.boxes[k]
        return occlusion(self.footprints[k][rows, cols], self.visible[k][rows, cols])


def scene_images(image: np.ndarray, objects: tuple[SceneObject, ...], footprints: list[np.ndarray],
                 boxes: list[tuple[slice, slice]], alpha: np.ndarray | None = None) -> SceneImages:
    """The masks of a pasted scene: each object's visible pixels by the paste order and the depth test."""
    visible = visible_layers([unhidden(obj, f) for obj, f in zip(objects, footprints)], paste_order(objects))
    instances = instance_mask(visible)
    return SceneImages(image, footprints, visible, binary(instances > 0), instances, boxes, alpha)


def paste_scene(background: np.ndarray, scene: Scene, cutouts: list[np.ndarray], threshold: int) -> SceneImages:
    """Paste the objects back to front (`cutouts[k]`: objects[k] premultiplied at its size) with what nearer
    scenery hides taken out, so nearer objects cover farther ones and nearer scenery covers both."""
    objects, resolution = scene.objects, background.shape[0]
    image = background.copy()
    for k in paste_order(objects):
        obj = objects[k]
        paste_over(image, hide(cutouts[k], obj.placement, obj.hidden) if obj.hidden is not None else cutouts[k],
                   obj.placement)
    boxes = [(slice(o.placement.y, o.placement.y + o.placement.height),
              slice(o.placement.x, o.placement.x + o.placement.width)) for o in objects]
    return scene_images(image, objects, [footprint(obj, cut, resolution, threshold)
                                         for obj, cut in zip(objects, cutouts)], boxes)


class AugmentedLayers:
    """`--augment` scenes: the row's perturbed background (object 1's background parameters) and each object's
    layer on it, made once. The redraw test reads a drawn object's final alpha alone (`object_alpha`); the colour
    layer is made only for the objects the scene keeps."""

    def __init__(self, background: np.ndarray, first: Augmentation, cutout_at: CutoutAt, threshold: int):
        self.scene = perturb_background(background, first)
        self.cutout_at, self.threshold = cutout_at, threshold
        self._layers: dict[tuple, tuple[ObjectLayer, np.ndarray]] = {}
        self._alphas: dict[tuple, np.ndarray] = {}

    @staticmethod
    def _key(obj: SceneObject) -> tuple:
        return obj.fg_id, obj.flip, obj.placement, obj.augmentation

    def of(self, obj: SceneObject) -> tuple[ObjectLayer, np.ndarray]:
        """(layer, its whole alpha on the frame) of `obj`."""
        key = self._key(obj)
        if key not in self._layers:
            layer = object_layer(self.cutout_at(obj.fg_id, obj.flip, obj.placement), obj.placement, obj.augmentation,
                                 self.scene, self.threshold)
            self._layers[key] = (layer, layer.alpha(self.scene.shape[0]))
        return self._layers[key]

    def footprint(self, obj: SceneObject) -> np.ndarray:
        key = self._key(obj)
        if key in self._layers:
            return self._layers[key][1] >= self.threshold
        if key not in self._alphas:
            self._alphas[key] = object_alpha(self.cutout_at(obj.fg_id, obj.flip, obj.placement)[..., 3],
                                             obj.placement, obj.augmentation, self.scene.shape[0], self.threshold)
        return self._alphas[key] >= self.threshold

    def paste(self, scene: Scene) -> SceneImages:
        """Every object's shadow on the ground (the background: shadows fall on no cut-out), then the objects
        back to front; `alpha` is their final alphas less what scenery hides, composed back to front."""
        objects, order = scene.objects, paste_order(scene.objects)
        layers = [self.of(obj) for obj in objects]
        image, alpha = self.scene, np.zeros(self.scene.shape[:2], dtype=np.uint8)
        for k in order:
            image = shade(image, layers[k][1], objects[k].augmentation, objects[k].hidden, objects[k].foot)
        boxes = [(slice(y0, y1), slice(x0, x1)) for x0, y0, x1, y1 in (layer.window for layer, _ in layers)]
        for k in order:
            layers[k][0].paste(image, objects[k].hidden)
            box = boxes[k]  # outside its window an object's alpha is 0 and leaves the composed alpha as it is
            own = layers[k][1][box] if objects[k].hidden is None else \
                np.where(objects[k].hidden[box], np.uint8(0), layers[k][1][box])
            alpha[box] = own + ((alpha[box].astype(np.uint16) * (255 - own) + 127) // 255).astype(np.uint8)
        return scene_images(image, objects, [a >= self.threshold for _, a in layers], boxes, alpha)


def derive_scene(settings: ContentSettings, index: int, first: SceneObject, background: np.ndarray,
                 split_foregrounds: tuple[int, ...], rule: PlacementRule, bg_id: int) -> tuple[Scene, SceneImages]:
    """Row `index`'s scene drawn and pasted: the one definition the renderer and verify share (they differ in
    where the rule's inputs come from: decoded files, or the dataset's stored copies)."""
    s, cutout_at = settings, rule.inputs.cutout_at
    place = placer(s, index, rule, bg_id)
    if s.with_augment:
        layers = AugmentedLayers(background, first.augmentation, cutout_at, s.mask_threshold)
        layers.of(first)  # object 1 is always pasted: its colour layer at once, its footprint from it
        scene = draw_scene(first, s.seed, index, s.object_range, split_foregrounds, place, layers.footprint)
        return scene, layers.paste(scene)

    def placed(obj: SceneObject) -> np.ndarray:
        return cutout_at(obj.fg_id, obj.flip, obj.placement)

    scene = draw_scene(first, s.seed, index, s.object_range, split_foregrounds, place,
                       lambda obj: footprint(obj, placed(obj), s.resolution, s.mask_threshold))
    return scene, paste_scene(background, scene, [placed(obj) for obj in scene.objects], s.mask_threshold)


def object_cells(scene: Scene, images: SceneImages, categories: Sequence[str | None] | None = None) -> list[dict]:
    """The `objects` column of a row (builder.contract.schema.object_struct), in drawing order (`categories`: each
    cut-out's, by fg_id, when the run has categories)."""
    cells = []
    for k, obj in enumerate(scene.objects):
        p = obj.placement
        cell = {"fg_id": obj.fg_id, "flip": bool(obj.flip), "x": p.x, "y": p.y, "scale": p.scale,
                "bbox": images.bbox(k), "occlusion": images.occlusion(k), **obj.fields}
        if categories is not None:
            cell["category"] = categories[obj.fg_id]
        if obj.augmentation is not None:
            cell.update(obj.augmentation.object_columns())
        cells.append(cell)
    return cells
