"""The typed settings, validated once: what the data is a function of (`ContentSettings`, recorded in the
manifest and shared by generate and verify), how one run goes about it (`RunOptions`), and the manifest."""

from __future__ import annotations

import dataclasses
import math
import platform
from importlib import metadata
from pathlib import Path

from builder.contract.cli import StrictParser
from builder.contract.depth_kinds import DEPTH_KINDS, METRIC, RELATIVE, DepthKind, depth_kind
from builder.contract.depth_storage import DEPTH_BITS
from builder.contract.errors import UsageError
from builder.contract.plan import DRAW_STREAM, DrawnRows, SampleSpace, SplitPlan
from builder.contract.placement_fields import PLACEMENT_MODES, STANDING_MODES

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
MANIFEST_FORMAT = 2  # 2: mask and depth PNGs with the Sub filter (same pixels; zlib, before issue 21 also isal)
DEPTH_KEYS = ("depth_model", "depth_input_size", "depth_dtype", "depth_kind")
# in the manifest only when not at their defaults, so datasets made before them keep their manifest (placements:
# only under --rows is it None, its default; the full product resolves it to DEFAULT_PLACEMENTS)
SPLIT_KEYS = ("validation_backgrounds", "validation_foregrounds", "depth_bits", "objects", "placements", "rows",
              "validation_rows")
DEFAULT_PLACEMENTS = 20
# in the manifest only with a placement rule that stands cut-outs on the ground (ground, physical) ...
GROUND_KEYS = ("placement_mode", "bg_depth_kind")
PHYSICAL_KEYS = ("focal_px",)  # ... and only with --placement-mode physical
BLEND_MODES = ("alpha", "hard", "feather", "motion")
# --augment presets: each part's range (0 / "alpha" = off). A part given explicitly overrides its preset value.
AUGMENT_PRESETS = {
    "none": {"bg_jitter": 0.0, "bg_noise": 0.0, "bg_shift": 0, "bg_blur": 0.0, "blend_modes": "alpha",
             "feather": 0.0, "motion": 0, "shadow": 0.0, "fg_rotation": 0.0, "fg_jitter": 0.0, "harmonize": 0.0},
    "realistic": {"bg_jitter": 0.2, "bg_noise": 4.0, "bg_shift": 4, "bg_blur": 1.0,
                  "blend_modes": ",".join(BLEND_MODES), "feather": 3.0, "motion": 9, "shadow": 0.6,
                  "fg_rotation": 15.0, "fg_jitter": 0.15, "harmonize": 0.5},
}
AUGMENT_KEYS = tuple(AUGMENT_PRESETS["none"])
MAX_OBJECTS = 255  # instance_mask is PNG L: one level per object, 0 for the background
DEFAULT_MIN_AREA = 1024  # --fg-min-area: mask pixels


def _count_or_auto(text: str) -> int | str:
    """A flag's value: `auto`, or a whole number (left for problems() to judge when it is neither)."""
    return int(text) if text.lstrip("-").isdigit() else text


def _option(default, help_text, **extra):
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


@dataclasses.dataclass(frozen=True)
class ContentSettings:
    """Everything the rows are a function of, besides the inputs: a rerun must match them to resume."""

    resolution: int = _option(224, "side R of the square backgrounds, composites, masks and depth maps")
    placements: int | None = _option(None, "random placements K of every foreground (and its flip) on every "
                                           "background, the full product; not with --rows",
                                     shown_default=DEFAULT_PLACEMENTS)
    rows: int | None = _option(None, "draw N train rows instead of the full product: row i draws its background, "
                                     f"cut-out and flip from default_rng([seed, i, {DRAW_STREAM}]) among the train "
                                     "inputs")
    validation_rows: int | None = _option(None, "with --rows and held-out inputs: draw M validation rows among the "
                                                "held-out inputs")
    seed: int = _option(0, "seed of every random choice; sample i draws from default_rng([seed, i])")
    scale_min: float = _option(0.3, "smallest foreground size: its longer side as a fraction of R")
    scale_max: float = _option(0.6, "largest foreground size: its longer side as a fraction of R")
    mask_threshold: int = _option(128, "mask is 255 where the placed alpha >= this (1..255)")
    jpeg_quality: int = _option(95, "JPEG quality of the composites and backgrounds")
    shard_size: int = _option(4000, "rows per Arrow shard (the unit of work and of resumption)")
    no_depth: bool = _option(False, "write composites and masks only, no depth columns")
    depth_model: str = _option(DEFAULT_DEPTH_MODEL, "transformers depth-estimation model id or local folder")
    depth_input_size: int | None = _option(None, "side of the square the depth model sees, a multiple of its patch "
                                                  "size or stride (default: the model's own, e.g. 518 for Depth "
                                                  "Anything, 384 for DPT)")
    depth_dtype: str = _option("auto", "model dtype: auto (bf16 on CUDA, fp32 elsewhere), float32, float16, "
                                       "bfloat16", choices=("auto", "float32", "float16", "bfloat16"))
    depth_kind: str | None = _option(None, "what the depth model outputs: relative (inverse depth, larger = nearer) "
                                           "or metric (metres); needed only for a model of a family not listed in "
                                           "the README (default: from the model's config)", choices=tuple(DEPTH_KINDS))
    depth_bits: int = _option(16, "bits per stored depth value: 16 (PNG I;16) or 8 (PNG L, smaller; 256 levels "
                                  "per image)", choices=(16, 8))
    validation_backgrounds: int = _option(0, "backgrounds held out for the validation split (chosen by --seed); "
                                             "train never sees them")
    validation_foregrounds: int = _option(0, "cut-outs held out for the validation split (chosen by --seed); "
                                             "train never sees them")
    augment: str = _option("none", "realistic composites: none (the cut-out pasted on the clean background) or "
                                   "realistic (every part below on, at its preset range)",
                           choices=tuple(AUGMENT_PRESETS))
    bg_jitter: float | None = _option(None, "background colour jitter J: brightness, contrast and saturation "
                                            "factors uniform in [1-J, 1+J], hue shift in [-J/10, J/10] turns")
    bg_noise: float | None = _option(None, "background gaussian noise: sigma uniform in [0, this] levels")
    bg_shift: int | None = _option(None, "background shift: dx, dy uniform integers in [-this, this] px, "
                                         "border reflected")
    bg_blur: float | None = _option(None, "background blur: box blur radius uniform in [0, this] px")
    blend_modes: str | None = _option(None, "edge blends drawn per sample, comma-separated from "
                                            f"{','.join(BLEND_MODES)} (alpha: the cut-out's own)")
    feather: float | None = _option(None, "feather blend: alpha blurred by sigma uniform in [0.5, this] px")
    motion: int | None = _option(None, "motion blend: a linear blur of length uniform in [2, this] px")
    shadow: float | None = _option(None, "soft shadow opacity uniform in [0, this] (0..1)")
    fg_rotation: float | None = _option(None, "foreground rotation uniform in [-this, this] degrees")
    fg_jitter: float | None = _option(None, "foreground colour jitter, as --bg-jitter")
    harmonize: float | None = _option(None, "luminance harmonisation: strength uniform in [0, this] (0..1) "
                                            "toward the background's mean luma under the cut-out")
    placement_mode: str = _option("uniform", "where cut-outs go: uniform (anywhere, any size in the scale range), "
                                             "ground (standing on the background's ground, sized by its depth, "
                                             "hidden by nearer scenery) or physical (as ground, at its real size: "
                                             "needs --fg-heights, metric depth and --focal-px or a depth model that "
                                             "predicts its field of view, Depth Pro)",
                                  choices=PLACEMENT_MODES)
    bg_depth_kind: str = _option("disparity", "what --bg-depth-dir maps hold: disparity (larger = nearer) or depth "
                                              "(distance; 0 = unknown; in metres for --placement-mode physical)",
                                 choices=("disparity", "depth"))
    focal_px: float | None = _option(None, "--placement-mode physical: the focal length of the original background "
                                           "images, in their pixels (the centre crop and resize to R are accounted "
                                           "for); without it, a Depth Pro model's predicted field of view gives each "
                                           "background's")
    objects: str = _option("1", "cut-outs per composite: N, or A-B (drawn per row); the row's own cut-out is the "
                                f"first, the others come from its split's cut-outs (at most {MAX_OBJECTS})")

    def __post_init__(self):
        if self.placements is None and self.rows is None:
            object.__setattr__(self, "placements", DEFAULT_PLACEMENTS)
        preset = AUGMENT_PRESETS.get(self.augment, AUGMENT_PRESETS["none"])
        for key in AUGMENT_KEYS:
            if getattr(self, key) is None:
                object.__setattr__(self, key, preset[key])
        if problems := self.problems():
            raise UsageError(problems)

    def problems(self) -> list[str]:
        """Every problem of these settings alone (the inputs' counts are checked by `split_problems`)."""
        return [*_value_problems(self), *_augment_problems(self), *_objects_problems(self), *_rows_problems(self)]

    def split_plan(self, n_bg: int, n_fg: int) -> SplitPlan:
        """The sample space and splits these settings make of n_bg backgrounds and n_fg cut-outs: the full
        product, or drawn rows (--rows)."""
        drawn = DrawnRows(self.seed, self.rows, self.validation_rows or 0) if self.rows is not None else None
        return SplitPlan.from_counts(SampleSpace(n_bg, n_fg, self.placements), self.seed,
                                     self.validation_backgrounds, self.validation_foregrounds, drawn)

    def split_problems(self, n_bg: int, n_fg: int) -> list[str]:
        """Held-out counts that leave no input on one side, known once the inputs are counted."""
        problems = []
        for key, count, what in (("validation_backgrounds", n_bg, "backgrounds"),
                                 ("validation_foregrounds", n_fg, "cut-outs")):
            held = getattr(self, key)
            if held >= count > 0:
                problems.append(f"--{key.replace('_', '-')} {held} leaves no {what} for train (there are {count}); "
                                f"hold out at most {count - 1}")
        held = self.validation_foregrounds
        fewest = min(n_fg - held, held) if 0 < held < n_fg else n_fg
        if self.object_range[1] > fewest > 0:
            problems.append(f"--objects {self.objects}: a composite holds distinct cut-outs of its split, and a split "
                            f"has only {fewest}; use at most {fewest} objects, or add cut-outs")
        return problems

    @property
    def with_augment(self) -> bool:
        return self.augment != "none"

    @property
    def blend_mode_list(self) -> list[str]:
        return [mode.strip() for mode in self.blend_modes.split(",") if mode.strip()]

    @property
    def object_range(self) -> tuple[int, int]:
        """(fewest, most) cut-outs per composite; ValueError if --objects is neither N nor A-B."""
        low, _, high = str(self.objects).strip().partition("-")
        return int(low), int(high or low)

    @property
    def with_objects(self) -> bool:
        """Several cut-outs per composite: the instance columns are present."""
        return self.object_range[1] > 1

    @property
    def with_depth(self) -> bool:
        return not self.no_depth

    @property
    def with_ground(self) -> bool:
        """The placement rule stands cut-outs on the background's ground (its rows have a foot and occlusion)."""
        return self.placement_mode in STANDING_MODES

    @property
    def kind(self) -> DepthKind:
        """What the stored depth means (set from the model's config before anything is written)."""
        return depth_kind(self.depth_kind)

    def to_json(self) -> dict:
        """The manifest's `settings`: the depth keys only when there is depth, the split keys only when set, the
        augmentation parts only when augmenting, the depth kind only when metric (so the defaults, and every
        relative model, write the manifest they always did)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if (self.with_depth or f.name not in DEPTH_KEYS)
                and (f.name != "depth_kind" or self.depth_kind == METRIC.name)
                and (f.name not in SPLIT_KEYS or getattr(self, f.name) != f.default)
                and (self.with_augment or f.name not in ("augment", *AUGMENT_KEYS))
                and (self.with_ground or f.name not in GROUND_KEYS)
                and (self.placement_mode == "physical" or f.name not in PHYSICAL_KEYS)}

    @classmethod
    def from_json(cls, data: dict) -> "ContentSettings":
        return cls(**data)


def _value_problems(s: ContentSettings) -> list[str]:
    """Each setting's own range."""
    problems = []
    if s.resolution < 32:
        problems.append(f"--resolution {s.resolution} is too small: use 32 or more (default 224)")
    if s.placements is not None and s.placements < 1:
        problems.append(f"--placements {s.placements}: need at least 1 placement per foreground")
    if s.seed < 0:
        problems.append(f"--seed {s.seed}: use a non-negative integer")
    if not 0 < s.scale_min <= s.scale_max:
        problems.append(f"--scale-min {s.scale_min} / --scale-max {s.scale_max}: "
                        "need 0 < scale-min <= scale-max")
    if s.scale_max > 1:
        problems.append(f"--scale-max {s.scale_max}: a foreground whose longer side exceeds R "
                        "cannot fit inside the frame; use at most 1.0")
    if round(s.scale_min * s.resolution) < 1:
        problems.append(f"--scale-min {s.scale_min} at --resolution {s.resolution} is below one pixel")
    if not 1 <= s.mask_threshold <= 255:
        problems.append(f"--mask-threshold {s.mask_threshold}: use 1..255")
    if not 1 <= s.jpeg_quality <= 100:
        problems.append(f"--jpeg-quality {s.jpeg_quality}: use 1..100")
    if s.depth_input_size is not None and s.depth_input_size < 1:
        problems.append(f"--depth-input-size {s.depth_input_size}: use a positive multiple of the model's patch "
                        "size (e.g. 518 for Depth Anything), or leave it out for the model's own")
    if s.depth_kind not in (None, *DEPTH_KINDS):
        problems.append(f"--depth-kind {s.depth_kind!r}: use {' or '.join(DEPTH_KINDS)}")
    if s.shard_size < 1:
        problems.append(f"--shard-size {s.shard_size}: use at least 1")
    for key in ("validation_backgrounds", "validation_foregrounds"):
        if getattr(s, key) < 0:
            problems.append(f"--{key.replace('_', '-')} {getattr(s, key)}: use 0 or more")
    if s.placement_mode not in PLACEMENT_MODES:
        problems.append(f"--placement-mode {s.placement_mode!r}: use one of {', '.join(PLACEMENT_MODES)}")
    if s.bg_depth_kind not in ("disparity", "depth"):
        problems.append(f"--bg-depth-kind {s.bg_depth_kind!r}: use disparity or depth")
    if s.focal_px is not None and s.placement_mode != "physical":
        problems.append("--focal-px is used by --placement-mode physical only: add it, or drop --focal-px")
    elif s.focal_px is not None and not (math.isfinite(s.focal_px) and s.focal_px > 0):
        problems.append(f"--focal-px {s.focal_px}: give the focal length as a positive number of pixels")
    if s.depth_bits not in DEPTH_BITS:
        problems.append(f"--depth-bits {s.depth_bits}: use " + " or ".join(map(str, DEPTH_BITS)))
    return problems


def _rows_problems(s: ContentSettings) -> list[str]:
    """--rows and --validation-rows: given together with held-out inputs, never with --placements."""
    problems = [f"--{key.replace('_', '-')} {count}: draw at least 1 row" for key in ("rows", "validation_rows")
                if (count := getattr(s, key)) is not None and count < 1]
    held = s.validation_backgrounds or s.validation_foregrounds
    if s.rows is None:
        if s.validation_rows is not None:
            problems.append(f"--validation-rows {s.validation_rows} needs --rows N, the train rows to draw "
                            "(without --rows every split holds the full product)")
        return problems
    if s.placements is not None:
        problems.append(f"--placements {s.placements} does not apply with --rows: each drawn row gets its own "
                        "placement; drop --placements")
    if held and s.validation_rows is None:
        problems.append(f"--rows {s.rows} with held-out inputs (--validation-backgrounds/"
                        "--validation-foregrounds): give --validation-rows M, the rows to draw among them")
    if not held and s.validation_rows is not None:
        problems.append(f"--validation-rows {s.validation_rows} draws among held-out inputs: add "
                        "--validation-backgrounds and/or --validation-foregrounds, or drop --validation-rows")
    return problems


def _objects_problems(s: ContentSettings) -> list[str]:
    """--objects: N or A-B, at least the row's own cut-out, at most one instance_mask level each."""
    text = f"--objects {s.objects!r}"
    try:
        low, high = s.object_range
    except ValueError:
        return [f"{text}: give a count N or a range A-B of whole numbers, e.g. --objects 2-3"]
    if low < 1:
        return [f"{text}: every composite holds at least its own cut-out; use 1 or more"]
    if low > high:
        return [f"{text}: the range runs backwards; write it as {high}-{low}"]
    if high > MAX_OBJECTS:
        return [f"{text}: instance_mask has {MAX_OBJECTS} object levels; use at most {MAX_OBJECTS}"]
    return []


def _augment_problems(s: ContentSettings) -> list[str]:
    """The realistic parts: only with --augment realistic, each within its range."""
    if s.augment not in AUGMENT_PRESETS:
        return [f"--augment {s.augment!r}: use one of {', '.join(AUGMENT_PRESETS)}"]
    if not s.with_augment:
        return [f"--{key.replace('_', '-')} {getattr(s, key)} needs --augment realistic"
                for key in AUGMENT_KEYS if getattr(s, key) != AUGMENT_PRESETS["none"][key]]
    problems = [f"--{key.replace('_', '-')} {getattr(s, key)}: use a value >= 0" for key in AUGMENT_KEYS
                if key != "blend_modes" and getattr(s, key) < 0]
    modes = s.blend_mode_list
    if not modes or set(modes) - set(BLEND_MODES):
        problems.append(f"--blend-modes {s.blend_modes!r}: give a comma-separated subset of "
                        f"{','.join(BLEND_MODES)}")
    for key, limit in (("bg_jitter", 1.0), ("fg_jitter", 1.0), ("shadow", 1.0), ("harmonize", 1.0),
                       ("fg_rotation", 180.0)):
        if getattr(s, key) > limit:
            problems.append(f"--{key.replace('_', '-')} {getattr(s, key)}: use at most {limit}")
    if s.bg_noise > 16:
        problems.append(f"--bg-noise {s.bg_noise}: use at most 16 levels")
    if s.bg_shift > s.resolution // 4:
        problems.append(f"--bg-shift {s.bg_shift}: use at most R/4 = {s.resolution // 4} px")
    if "feather" in modes and s.feather < 0.5:
        problems.append(f"--feather {s.feather}: the feather blend needs a sigma of at least 0.5 px")
    if "motion" in modes and s.motion < 2:
        problems.append(f"--motion {s.motion}: the motion blend needs a length of at least 2 px")
    return problems


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How one run goes about it and where its inputs are: none of these change a row by itself (the inputs they
    select go into the manifest with their hashes, a COCO file's filters with them)."""

    output_dir: Path | None = _option(None, "folder the dataset is written to")
    bg_dir: Path | None = _option(None, "folder of background images")
    fg_dir: Path | None = _option(None, "folder of foreground cut-outs with transparency (or, with --fg-mask-dir, "
                                        "of plain photos); a sub-folder's name is its files' category")
    fg_mask_dir: Path | None = _option(None, "a mask per photo of --fg-dir, same path and file stem (PNG L, "
                                             "0..255 is the alpha); the cut-out is cropped to the mask's box")
    fg_coco: Path | None = _option(None, "COCO instances JSON: every annotation with iscrowd 0 that the filters "
                                         "keep becomes a cut-out (instead of --fg-dir; needs --fg-images)")
    fg_images: Path | None = _option(None, "--fg-coco: the folder its images' file_name paths are relative to")
    fg_min_area: int = _option(DEFAULT_MIN_AREA, "--fg-coco: leave out instances with fewer mask pixels")
    fg_categories: str | None = _option(None, "--fg-coco: keep only these categories (comma-separated names)")
    fg_keep_truncated: bool = _option(False, "--fg-coco: keep instances whose mask touches the image border "
                                             "(left out by default: truncated objects)")
    demo: bool = _option(False, "use small procedural backgrounds and cut-outs generated in code")
    bg_depth_dir: Path | None = _option(None, "--placement-mode ground: one depth map per background with its file "
                                              "stem (16-bit PNG or .npy float array); default: the depth model's")
    fg_heights: Path | None = _option(None, "--placement-mode physical: a CSV of lines name,height_m: each cut-out's "
                                            "real height in metres, by its file stem or its category")
    batch_size: int | str = _option("auto", "samples per depth-model batch: a number, or auto (256 on CUDA, 32 "
                                            "elsewhere)", parse=_count_or_auto)
    workers: int | str = _option("auto", "CPU worker processes per rank (render, encode, statistics): a number, "
                                         "0 for none (all in the rank's process), or auto (the rank's share of "
                                         "the cores)", parse=_count_or_auto)
    compile: bool = _option(False, "torch.compile the depth model for one batch shape (the last batch is padded)")
    overwrite: bool = _option(False, "delete an existing dataset in --output-dir and start over")
    summary_json: Path | None = _option(None, "also write the run's summary (rows, seconds, rows/s) as JSON here")
    rank: int | None = _option(None, "run as independent task R of --world-size N: write only this task's shards "
                                     "and exit (SLURM job arrays and Kubernetes Indexed Jobs set it themselves)")
    world_size: int | None = _option(None, "the number of independent tasks (with --rank, or JOB_COMPLETION_INDEX "
                                           "of a Kubernetes Indexed Job)")
    finish: bool = _option(False, "after independent tasks: check every shard is finished, then write stats.json, "
                                  "the grids and the card from the folder alone (other flags are not needed)")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "Path | None" and value is not None and not isinstance(value, Path):
                object.__setattr__(self, field.name, Path(value))
        if problems := self.problems():
            raise UsageError(problems)

    def problems(self) -> list[str]:
        problems = []
        if self.demo and (self.bg_dir or self.fg_dir or self.fg_coco or self.fg_mask_dir):
            problems.append("--demo generates its own inputs: drop --bg-dir/--fg-dir/--fg-mask-dir/--fg-coco, or drop "
                            "--demo")
        if not self.demo and not (self.bg_dir and (self.fg_dir or self.fg_coco)) and not self.finish:
            problems.append("give both --bg-dir and --fg-dir (or --fg-coco with --fg-images for the cut-outs; or "
                            "--demo for built-in inputs)")
        problems += self.source_problems()
        if self.demo and self.bg_depth_dir:
            problems.append("--demo brings its own exact depth: drop --bg-depth-dir, or drop --demo")
        if self.finish and (self.overwrite or self.rank is not None or self.world_size is not None):
            problems.append("--finish runs once, after every task: drop --overwrite, --rank and --world-size")
        for key, least in (("batch_size", 1), ("workers", 0)):
            value = getattr(self, key)
            if value != "auto" and not (isinstance(value, int) and value >= least):
                problems.append(f"--{key.replace('_', '-')} {value}: use auto or a whole number >= {least}")
        return problems

    def source_problems(self) -> list[str]:
        """One source of cut-outs per run, each with the flags it needs."""
        if self.fg_coco is not None and (self.fg_dir or self.fg_mask_dir):
            return ["one source of cut-outs per run: --fg-coco (with --fg-images), or --fg-dir (with --fg-mask-dir "
                    "for photos and masks); drop the other"]
        problems = []
        if (self.fg_coco is None) != (self.fg_images is None):
            problems.append("--fg-coco FILE and --fg-images DIR go together (the folder its file_name paths are "
                            "relative to)")
        if self.fg_mask_dir is not None and self.fg_dir is None:
            problems.append("--fg-mask-dir holds the masks of the photos of --fg-dir: give --fg-dir too")
        filters = [f for f, on in (("--fg-min-area", self.fg_min_area != DEFAULT_MIN_AREA),
                                   ("--fg-categories", self.fg_categories is not None),
                                   ("--fg-keep-truncated", self.fg_keep_truncated)) if on]
        if filters and self.fg_coco is None:
            problems.append(f"{' / '.join(filters)} filter the instances of --fg-coco: add it, or drop them")
        if self.fg_min_area < 0:
            problems.append(f"--fg-min-area {self.fg_min_area}: use 0 or more mask pixels")
        if self.fg_categories is not None and not self.fg_category_names:
            problems.append(f"--fg-categories {self.fg_categories!r}: give comma-separated category names")
        return problems

    @property
    def fg_category_names(self) -> tuple[str, ...] | None:
        """--fg-categories as names, None when not given."""
        if self.fg_categories is None:
            return None
        return tuple(name.strip() for name in self.fg_categories.split(",") if name.strip())


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """A generation: content settings plus run options, from one flat set of keyword arguments or flags."""

    content: ContentSettings
    run: RunOptions

    @classmethod
    def from_kwargs(cls, **kwargs) -> "GenerateConfig":
        """Every problem of both parts at once (one UsageError), not just the first part's."""
        unknown = set(kwargs) - {f.name for part in (ContentSettings, RunOptions) for f in dataclasses.fields(part)}
        if unknown:
            raise UsageError([f"unknown setting(s): {', '.join(sorted(unknown))}"])
        parts, problems = [], []
        for part in (ContentSettings, RunOptions):
            names = {f.name for f in dataclasses.fields(part)}
            try:
                parts.append(part(**{k: v for k, v in kwargs.items() if k in names}))
            except UsageError as err:
                problems += err.problems
        if not problems:
            problems = ground_problems(*parts)
        if problems:
            raise UsageError(problems)
        return cls(*parts)

    @staticmethod
    def parser() -> StrictParser:
        parser = StrictParser(
            description="Generate the fgbg-depth dataset (composite + mask + depth). "
                        "Run it with `accelerate launch` to use several processes or GPUs.")
        for field in (*dataclasses.fields(ContentSettings), *dataclasses.fields(RunOptions)):
            flag = "--" + field.name.replace("_", "-")
            help_text = field.metadata["help"]
            if field.type == "bool":
                parser.add_argument(flag, action="store_true", help=help_text)
            else:
                kind = field.metadata.get("parse") or {"int": int, "float": float}.get(
                    field.type.removesuffix(" | None"), str)
                default = ("from --augment" if field.name in AUGMENT_KEYS else field.metadata.get("shown_default")
                           or ("none" if field.default is None else field.default))
                parser.add_argument(flag, type=kind, default=field.default, choices=field.metadata.get("choices"),
                                    help=f"{help_text} (default: {default})")
        return parser

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> "GenerateConfig":
        config = cls.from_kwargs(**vars(cls.parser().parse_args(argv)))
        if config.run.output_dir is None:
            raise UsageError(["give --output-dir, the folder the dataset is written to"])
        return config


def ground_problems(content: ContentSettings, run: RunOptions) -> list[str]:
    """Where a standing rule gets its depth: --bg-depth-dir, the demo's own, or the run's depth model; and what
    physical placement needs besides."""
    if content.placement_mode == "physical":
        return physical_problems(content, run)
    heights = (["--fg-heights is used by --placement-mode physical only: add it, or drop --fg-heights"]
               if run.fg_heights is not None else [])
    if not content.with_ground:
        return heights + (["--bg-depth-dir / --bg-depth-kind are used by --placement-mode ground or physical only: "
                           "add one, or drop them"]
                          if run.bg_depth_dir is not None or content.bg_depth_kind != "disparity" else [])
    if heights:
        return heights
    if content.no_depth and run.bg_depth_dir is None and not run.demo:
        return ["--placement-mode ground needs the backgrounds' depth: pass --bg-depth-dir DIR (one map per "
                "background), or drop --no-depth so the depth model provides it"]
    if content.bg_depth_kind != "disparity" and run.bg_depth_dir is None:
        return ["--bg-depth-kind describes the maps of --bg-depth-dir: pass --bg-depth-dir too, or drop it"]
    return []


def physical_problems(content: ContentSettings, run: RunOptions) -> list[str]:
    """--placement-mode physical: a focal length, the cut-outs' heights and metric depth, every missing one named.
    Without --focal-px the depth model's predicted field of view gives it, where the model gives the backgrounds'
    depth (whether the model predicts one is checked once it is loaded, builder.run.pipeline.load_job)."""
    problems = []
    if content.focal_px is None and (content.no_depth or run.bg_depth_dir is not None or run.demo):
        problems.append(f"--placement-mode physical needs the focal length of the original background images: "
                        f"{FOCAL_FIX}")
    if run.fg_heights is None:
        problems.append("--placement-mode physical needs each cut-out's real height: pass --fg-heights FILE.csv "
                        "(lines name,height_m; name = a cut-out's file stem or a category)")
    return problems + metric_depth_problems(content, run)


FOCAL_FIX = ("pass --focal-px F (pixels; from EXIF: focal length in mm / sensor width in mm * image width in px), or "
             "let a depth model that predicts its field of view (a Depth Pro model, --depth-model) give the "
             "backgrounds' depth and focal length (without --no-depth and --bg-depth-dir)")


def metric_depth_problems(content: ContentSettings, run: RunOptions) -> list[str]:
    """Physical sizes need depth in metres: --bg-depth-dir maps of --bg-depth-kind depth, or the stored depth of a
    metric depth model (a model of unknown kind is checked once it is loaded, builder.run.pipeline.load_job)."""
    metric = "pass --bg-depth-dir DIR (one map per background, in metres) with --bg-depth-kind depth, or use a metric "
    if run.demo:
        return ["--placement-mode physical needs metric depth, and the demo's maps are relative: use --bg-dir/--fg-dir "
                "with --bg-depth-dir DIR --bg-depth-kind depth (maps in metres) or a metric depth model"]
    if run.bg_depth_dir is not None:
        return [] if content.bg_depth_kind == "depth" else [
            "--placement-mode physical needs metric depth: --bg-depth-dir maps hold disparity; give maps in metres "
            "with --bg-depth-kind depth"]
    if content.bg_depth_kind != "disparity":
        return ["--bg-depth-kind describes the maps of --bg-depth-dir: pass --bg-depth-dir too, or drop it"]
    if content.no_depth:
        return [f"--placement-mode physical needs metric depth: {metric}depth model (drop --no-depth)"]
    if content.depth_kind == RELATIVE.name:
        return [f"--placement-mode physical needs metric depth, and --depth-kind relative says the model's is not: "
                f"{metric}depth model"]
    return []


def library_versions() -> dict:
    names = ("datasets", "huggingface_hub", "transformers", "torch", "accelerate", "pillow", "numpy", "pyarrow",
             "deflate")
    return {"python": platform.python_version(), **{name: metadata.version(name) for name in names}}


@dataclasses.dataclass(frozen=True)
class InputRecord:
    """An input as the manifest records it: name, content hash and size; a cut-out also its category (and a COCO
    instance its annotation id, a photo its mask's record); a `--bg-depth-dir` map the hash of its map as stored
    (builder.contract.given_depth `GivenDepth.sha256`). Unset parts are left out of the JSON."""

    name: str
    sha256: str
    bytes: int
    category: str | None = None
    category_id: int | None = None
    annotation_id: int | None = None
    mask: "InputRecord | None" = None
    stored_sha256: str | None = None

    def to_json(self) -> dict:
        data = {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}
        for key in ("category", "category_id", "annotation_id", "stored_sha256"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return {**data, "mask": self.mask.to_json()} if self.mask else data

    @classmethod
    def from_json(cls, data: dict) -> "InputRecord":
        mask = cls.from_json(data["mask"]) if "mask" in data else None
        return cls(**{**data, "mask": mask})


def with_categories(cutouts) -> bool:
    """A run has categories when any of its cut-outs has one (the category columns are then present)."""
    return any(cutout.category is not None for cutout in cutouts)


def from_coco(source: dict | None) -> bool:
    """Cut-outs from a COCO file (a manifest's `source`): the `foregrounds` config has their annotation ids."""
    return (source or {}).get("kind") == "coco"


def column_groups(settings: ContentSettings, categories: bool = False, coco: bool = False,
                  given_depth: bool = False, field_of_view: bool = False) -> dict[str, bool]:
    """Which optional column groups a dataset has, as the schema's keyword arguments (`features(**groups)`);
    `given_depth`: the `--bg-depth-dir` maps are stored (builder.contract.given_depth); `field_of_view`: the depth
    model predicts its field of view (the backgrounds' focal lengths are stored)."""
    return {"with_depth": settings.with_depth, "with_augment": settings.with_augment,
            "placement_mode": settings.placement_mode, "with_objects": settings.with_objects,
            "with_categories": categories, "with_coco": coco, "with_given_depth": given_depth,
            "with_field_of_view": settings.with_depth and field_of_view}


@dataclasses.dataclass(frozen=True)
class PhysicalInputs:
    """--placement-mode physical: what the sizes come from besides the depth and --focal-px, recorded in the manifest
    (verify has only the stored crops and cut-outs): each background's original (width, height), which gives its
    focal length at R from --focal-px, and each cut-out's real height in metres, in input order; and where the focal
    length comes from: --focal-px, or (`from_field_of_view`, recorded as `"focal_from": "field_of_view"`) each
    background's `focal_length_px` as the depth model predicted it, stored in `backgrounds`."""

    bg_sizes: tuple[tuple[int, int], ...]
    fg_heights_m: tuple[float, ...]
    from_field_of_view: bool = False

    def to_json(self) -> dict:
        data = {"bg_sizes": [list(size) for size in self.bg_sizes], "fg_heights_m": list(self.fg_heights_m)}
        return {**data, "focal_from": "field_of_view"} if self.from_field_of_view else data

    @classmethod
    def from_json(cls, data: dict) -> "PhysicalInputs":
        return cls(tuple(tuple(size) for size in data["bg_sizes"]), tuple(data["fg_heights_m"]),
                   data.get("focal_from") == "field_of_view")


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    id: str
    revision: str
    dtype: str
    field_of_view: bool = False  # it predicts its field of view: `backgrounds` stores the focal lengths

    def to_json(self) -> dict:
        """Its record; `field_of_view` only where true (other models keep their manifest)."""
        data = dataclasses.asdict(self)
        return data if self.field_of_view else {k: v for k, v in data.items() if k != "field_of_view"}


@dataclasses.dataclass(frozen=True)
class Manifest:
    """`manifest.json`: what a dataset folder was made from. A rerun resumes only when this matches."""

    settings: ContentSettings
    backgrounds: tuple[InputRecord, ...]
    foregrounds: tuple[InputRecord, ...]
    model: ModelRecord | None
    versions: dict
    format: int = MANIFEST_FORMAT
    held_out: dict | None = None  # {"backgrounds": [names], "foregrounds": [names]} when a validation split exists
    bg_depths: tuple[InputRecord, ...] | None = None  # ground placement's depth maps (the demo's, --bg-depth-dir's)
    source: dict | None = None  # where the cut-outs came from, when not an RGBA folder (builder.rows.sources)
    physical: PhysicalInputs | None = None  # --placement-mode physical's sizes and heights

    @property
    def bg_names(self) -> list[str]:
        return [f.name for f in self.backgrounds]

    @property
    def fg_names(self) -> list[str]:
        return [f.name for f in self.foregrounds]

    @property
    def with_categories(self) -> bool:
        return with_categories(self.foregrounds)

    @property
    def stores_given_depth(self) -> bool:
        """The `--bg-depth-dir` maps are stored in `backgrounds` (builder.contract.given_depth): their records carry
        the stored maps' hashes. The demo's maps are not stored: verify makes them again."""
        return bool(self.bg_depths) and all(record.stored_sha256 is not None for record in self.bg_depths)

    @property
    def column_groups(self) -> dict[str, bool]:
        return column_groups(self.settings, self.with_categories, from_coco(self.source), self.stores_given_depth,
                             self.model is not None and self.model.field_of_view)

    def split_plan(self) -> SplitPlan:
        """The sample space and splits this manifest's inputs and settings make (no input is read)."""
        return self.settings.split_plan(len(self.backgrounds), len(self.foregrounds))

    def to_json(self) -> dict:
        data = {"format": self.format, "settings": self.settings.to_json(),
                "inputs": {"backgrounds": [f.to_json() for f in self.backgrounds],
                           "foregrounds": [f.to_json() for f in self.foregrounds],
                           **({"bg_depths": [f.to_json() for f in self.bg_depths]}
                              if self.bg_depths is not None else {}),
                           **({"physical": self.physical.to_json()} if self.physical is not None else {})},
                "model": self.model.to_json() if self.model else None, "versions": self.versions}
        data = {**data, "held_out": self.held_out} if self.held_out else data
        return {**data, "source": self.source} if self.source else data

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        if data.get("format") != MANIFEST_FORMAT:
            raise UsageError([f"manifest format {data.get('format')} is not this version's ({MANIFEST_FORMAT}); "
                              "regenerate the dataset with this version, or use the version that made it"])
        inputs = data["inputs"]
        return cls(ContentSettings.from_json(data["settings"]),
                   tuple(InputRecord.from_json(f) for f in inputs["backgrounds"]),
                   tuple(InputRecord.from_json(f) for f in inputs["foregrounds"]),
                   ModelRecord(**data["model"]) if data.get("model") else None, data["versions"], data["format"],
                   data.get("held_out"),
                   tuple(InputRecord.from_json(f) for f in inputs["bg_depths"]) if "bg_depths" in inputs else None,
                   data.get("source"),
                   PhysicalInputs.from_json(inputs["physical"]) if "physical" in inputs else None)

    def differences(self, other: "Manifest") -> list[str]:
        """Top-level parts that differ, library versions aside (a rerun after an upgrade may resume)."""
        ours, theirs = self.to_json(), other.to_json()
        return [key for key in sorted(set(ours) | set(theirs)) if key != "versions" and ours.get(key) != theirs.get(key)]
