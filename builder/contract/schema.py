"""The data contract: each config's columns (with how its images are stored, which statistics they feed and
which sample grid shows them), its key column, and the splits.

Nearly a leaf: it imports only builder.contract.depth_kinds, builder.contract.depth_storage,
builder.contract.given_depth, builder.contract.augment_fields and builder.contract.placement_fields (all leaves), so
every other module (and `fgbg_depth`) can import it.
"""

from __future__ import annotations

import dataclasses

import datasets

from builder.contract import given_depth as given
from builder.contract.augment_fields import BACKGROUND_AUGMENT_FIELDS, OBJECT_AUGMENT_FIELDS
from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.depth_storage import QUANTISED, depth_storage
from builder.contract.placement_fields import PLACED_FIELDS, STANDING_MODES


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """How an image column is stored, and the statistics kind (and sample grid, if any) it feeds."""

    format: str  # "JPEG" or "PNG"
    mode: str  # PIL mode as decoded: "RGB", "RGBA", "L", "I;16"
    stats_kind: str
    grid: str | None = None

    @property
    def max_value(self) -> int:
        """Peak value of the stored pixels: statistics are scaled to [0, 1] by it."""
        return 65535 if self.mode == "I;16" else 255


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "image", "int64", "int32", "float32", "bool", "string", "box"
    image: ImageSpec | None = None
    depth: bool = False  # part of the depth block, absent with --no-depth
    augment: bool = False  # an augmentation column, present only with --augment other than none
    placement: tuple[str, ...] = ()  # present only with these --placement-mode rules (empty: with every rule)
    objects: bool = False  # a several-objects column, present only with --objects above 1
    categories: bool = False  # a category column, present only when the cut-outs have categories
    coco: bool = False  # a COCO source's column, present only with --fg-coco
    given_depth: bool = False  # a stored --bg-depth-dir map's column, present only with --bg-depth-dir
    field_of_view: bool = False  # present only with a depth model that predicts its field of view (Depth Pro)

    def feature(self, placement_mode: str = "uniform", with_augment: bool = False, with_categories: bool = False):
        if self.dtype == "image":
            return datasets.Image()
        if self.dtype == "box":
            return datasets.List(datasets.Value("int32"), length=4)
        if self.dtype == "objects":
            return datasets.List(object_struct(placement_mode, with_augment, with_categories))
        return datasets.Value(self.dtype)


def object_struct(placement_mode: str = "uniform", with_augment: bool = False, with_categories: bool = False) -> dict:
    """One entry of `objects` (builder.rows.scene): a cut-out of the composite (and its category, when the
    cut-outs have categories), where it is, how much is hidden, and with `--augment` its cut-out's parameters."""
    fields = {"fg_id": datasets.Value("int32"),
              **({"category": datasets.Value("string")} if with_categories else {}),
              "flip": datasets.Value("bool"), "x": datasets.Value("int32"),
              "y": datasets.Value("int32"), "scale": datasets.Value("float32"),
              "bbox": datasets.List(datasets.Value("int32"), length=4), "occlusion": datasets.Value("float32")}
    fields.update({name: datasets.Value(dtype) for name, dtype, modes in PLACED_FIELDS if placement_mode in modes})
    if with_augment:
        fields.update({name: datasets.Value(dtype) for name, dtype in OBJECT_AUGMENT_FIELDS})
    return fields


@dataclasses.dataclass(frozen=True)
class ConfigSchema:
    name: str
    key_column: str
    columns: tuple[Column, ...]
    depth_source: str | None = None  # the image column whose depth the `depth` column holds

    def active_columns(self, with_depth: bool, with_augment: bool = False, placement_mode: str = "uniform",
                       with_objects: bool = False, with_categories: bool = False, with_coco: bool = False,
                       with_given_depth: bool = False, with_field_of_view: bool = False) -> list[Column]:
        return [c for c in self.columns if (with_depth or not c.depth) and (with_augment or not c.augment)
                and (not c.placement or placement_mode in c.placement) and (with_objects or not c.objects)
                and (with_categories or not c.categories) and (with_coco or not c.coco)
                and (with_given_depth or not c.given_depth) and (with_field_of_view or not c.field_of_view)]

    def features(self, with_depth: bool = True, with_augment: bool = False, placement_mode: str = "uniform",
                 with_objects: bool = False, with_categories: bool = False, with_coco: bool = False,
                 with_given_depth: bool = False, with_field_of_view: bool = False) -> datasets.Features:
        """Features of the config; `with_depth=False` is the `--no-depth` layout, `with_augment=True` adds the
        augmentation columns (`--augment` other than none), `placement_mode` the columns of its rule (a rule that
        stands cut-outs on the ground: the scene-geometry columns), `with_objects=True` the instance columns
        (`--objects` above 1),
        `with_categories=True` the category columns (cut-outs with categories), `with_coco=True` the annotation
        ids (`--fg-coco`), `with_given_depth=True` the stored `--bg-depth-dir` maps (builder.contract.given_depth),
        `with_field_of_view=True` the focal lengths of a depth model that predicts its field of view."""
        return datasets.Features({c.name: c.feature(placement_mode, with_augment, with_categories) for c in
                                  self.active_columns(with_depth, with_augment, placement_mode, with_objects,
                                                      with_categories, with_coco, with_given_depth,
                                                      with_field_of_view)})

    def image_columns(self, with_depth: bool, with_augment: bool = False, placement_mode: str = "uniform",
                      with_objects: bool = False) -> list[Column]:
        return [c for c in self.active_columns(with_depth, with_augment, placement_mode, with_objects)
                if c.image is not None]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def for_depth_bits(self, bits: int) -> "ConfigSchema":
        """The schema as stored with `--depth-bits` (builder.contract.depth_storage): the depth column's PNG mode."""
        mode = depth_storage(bits).mode
        return dataclasses.replace(self, columns=tuple(
            dataclasses.replace(c, image=dataclasses.replace(c.image, mode=mode)) if c.name == "depth" else c
            for c in self.columns))

    @property
    def peaks(self) -> dict[str, int]:
        """Image column -> peak value of its stored pixels (statistics are scaled to [0, 1] by it)."""
        return {c.name: c.image.max_value for c in self.columns if c.image}

    def by_kind(self, column_stats: dict) -> dict:
        """Per-column statistics renamed to their statistics kinds, the names stats.json uses."""
        return {self.column(name).image.stats_kind: stats for name, stats in column_stats.items()}


def _depth_block(stats_kind: str, grid: str | None) -> tuple[Column, ...]:
    return (Column("depth", "image", ImageSpec("PNG", QUANTISED.mode, stats_kind, grid), depth=True),
            Column("depth_min", "float32", depth=True), Column("depth_max", "float32", depth=True))


def _augment_block() -> tuple[Column, ...]:
    """The augmentation parameters as columns, after the placement columns: they describe object 1."""
    return tuple(Column(name, dtype, augment=True) for name, dtype in BACKGROUND_AUGMENT_FIELDS + OBJECT_AUGMENT_FIELDS)


def _ground_block() -> tuple[Column, ...]:
    """Where the cut-out stands and what hides it (builder.rows.geometry); `mask` is then its visible part."""
    return (Column("amodal_bbox", "box", placement=STANDING_MODES),
            Column("occlusion", "float32", placement=STANDING_MODES),
            *(Column(name, dtype, placement=modes) for name, dtype, modes in PLACED_FIELDS),
            Column("placement_mode", "string", placement=STANDING_MODES))


def _objects_block() -> tuple[Column, ...]:
    """Every cut-out of a several-object composite (builder.rows.scene); the columns above describe object 1."""
    return (Column("objects", "objects", objects=True), Column("objects_redrawn", "int32", objects=True),
            Column("objects_dropped", "int32", objects=True))


DEFAULT = ConfigSchema("default", "sample_id", (
    Column("fg_bg", "image", ImageSpec("JPEG", "RGB", "fg_bg", grid="fg_bg")),
    Column("mask", "image", ImageSpec("PNG", "L", "mask", grid="mask")),
    Column("amodal_mask", "image", ImageSpec("PNG", "L", "amodal_mask", grid="amodal_mask"),
           placement=STANDING_MODES),
    Column("instance_mask", "image", ImageSpec("PNG", "L", "instance_mask"), objects=True),
    Column("alpha", "image", ImageSpec("PNG", "L", "alpha", grid="alpha"), augment=True),
    *_depth_block("depth", grid="depth"),
    Column("sample_id", "int64"),
    Column("bg_id", "int32"),
    Column("fg_id", "int32"),
    Column("category", "string", categories=True),
    Column("flip", "bool"),
    Column("x", "int32"),
    Column("y", "int32"),
    Column("scale", "float32"),
    Column("bbox", "box"),
    *_ground_block(),
    *_objects_block(),
    *_augment_block(),
), depth_source="fg_bg")
BACKGROUNDS = ConfigSchema("backgrounds", "bg_id", (
    Column("bg_id", "int32"),
    Column("image", "image", ImageSpec("JPEG", "RGB", "bg", grid="bg")),
    *_depth_block("bg_depth", grid=None),
    Column(FOCAL_COLUMN, "float32", depth=True, field_of_view=True),
    Column(given.COLUMN, "image", ImageSpec("PNG", given.MODE, given.COLUMN), given_depth=True),
    Column(given.MIN_COLUMN, "float32", given_depth=True),
    Column(given.MAX_COLUMN, "float32", given_depth=True),
    Column("source", "string"),
), depth_source="image")
FOREGROUNDS = ConfigSchema("foregrounds", "fg_id", (
    Column("fg_id", "int32"),
    Column("image", "image", ImageSpec("PNG", "RGBA", "fg", grid="fg")),
    Column("mask", "image", ImageSpec("PNG", "L", "fg_mask")),
    Column("source", "string"),
    Column("category", "string", categories=True),
    Column("category_id", "int32", categories=True),
    Column("annotation_id", "int64", coco=True),
))

SCHEMAS = (DEFAULT, BACKGROUNDS, FOREGROUNDS)
SCHEMA_BY_NAME = {schema.name: schema for schema in SCHEMAS}
CONFIG_NAMES = tuple(SCHEMA_BY_NAME)
# sample grid name -> (config, column), in the order the card shows them
GRID_COLUMNS = {c.image.grid: (s.name, c.name) for s in SCHEMAS for c in s.columns if c.image and c.image.grid}


def features(config_name: str, with_depth: bool = True, with_augment: bool = False, placement_mode: str = "uniform",
             with_objects: bool = False, with_categories: bool = False, with_coco: bool = False,
             with_given_depth: bool = False, with_field_of_view: bool = False) -> datasets.Features:
    if config_name not in SCHEMA_BY_NAME:
        raise ValueError(f"unknown config {config_name!r}; expected one of {CONFIG_NAMES}")
    return SCHEMA_BY_NAME[config_name].features(with_depth, with_augment, placement_mode, with_objects, with_categories,
                                                with_coco, with_given_depth, with_field_of_view)
