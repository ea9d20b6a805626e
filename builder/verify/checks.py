"""Pure row checks: each takes an immutable `Reference` (the manifest's settings and the stored inputs) and one
row, and returns the problems it found with the statistics of the images it decoded. No shared state, no order.

Every check reuses the generator's pure functions (plan, composite), so verify checks the data against the code's
definition; tests/test_composite.py checks those functions against hand-computed blends, and
tests/test_augment_oracles.py checks the augmented rows against oracles that share no code with them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from builder.contract import given_depth as given
from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.given_depth import GivenDepth
from builder.contract.plan import Placement, SplitPlan, placed_size
from builder.contract.schema import BACKGROUNDS, DEFAULT, FOREGROUNDS, ConfigSchema
from builder.contract.settings import Manifest
from builder.rows.augment import Augmentation, augmented_composite, draw_augmentation
from builder.rows.composite import composite, mask_bbox, placed_foreground, placed_mask
from builder.rows.geometry import BackgroundGround, foot_box, hide, nearer_scenery, occlusion
from builder.rows.placement import Placed, PlacementInputs, PlacementRule, placement_rule
from builder.rows.scene import Scene, SceneImages, SceneObject, derive_scene, scene_object
from builder.rows.stats import StatsBook
from builder.verify.scenes import objects_problems, same_value, scene_mask_problems


@dataclasses.dataclass(frozen=True)
class Reference:
    """What rows are checked against: the manifest, and the decoded stored inputs by id (read-only arrays, decoded
    when first asked for: builder.verify.stored) with the cut-outs' (height, width)."""

    manifest: Manifest
    backgrounds: Mapping[int, np.ndarray]
    foregrounds: Mapping[int, np.ndarray]
    foreground_shapes: Mapping[int, tuple[int, int]]
    grounds: Mapping[int, BackgroundGround]  # standing rules: from the depth each background was placed by
    # physical without --focal-px: each background's stored focal length at R (the depth model's field of view)
    focals: Mapping[int, float] = dataclasses.field(default_factory=dict)

    @property
    def settings(self):
        return self.manifest.settings

    def schema(self, schema: ConfigSchema) -> ConfigSchema:
        """A config's schema as this dataset stores it (`--depth-bits`)."""
        return schema.for_depth_bits(self.settings.depth_bits)

    @functools.cached_property
    def plan(self) -> SplitPlan:
        """The manifest's sample space and splits: which inputs every sample uses and which split it is in."""
        return self.manifest.split_plan()

    @functools.cached_property
    def rule(self) -> PlacementRule:
        """The dataset's placement rule, over the stored cut-outs and the grounds of the depth they were placed by."""
        def cutout_at(fg_id: int, flip: int, placement: Placement) -> np.ndarray:
            return placed_foreground(self.foregrounds[fg_id], bool(flip), placement)

        return placement_rule(self.settings, PlacementInputs(self.foreground_shapes, self.foregrounds.__getitem__,
                                                             cutout_at, self.grounds.__getitem__,
                                                             self.manifest.physical, self.focals.__getitem__))

    @property
    def sized_by_stored_focal(self) -> bool:
        """Physical placement by each background's stored focal length (no --focal-px)."""
        return self.settings.placement_mode == "physical" and self.settings.focal_px is None


@dataclasses.dataclass
class RowResult:
    problems: list[str]
    stats: StatsBook  # by column, of the images decoded


# --------------------------------------------------------------------------------------------- tolerance

def jpeg_scale(quality: int) -> float:
    """libjpeg's quantisation-table scale for a quality setting: 1.0 at 50, 0.1 at 95, 0 at 100."""
    return (200 - 2 * quality) / 100 if quality >= 50 else 50 / quality


def composite_tolerance(quality: int) -> tuple[float, float]:
    """(mean, block) limits on |stored fg_bg - recomposite over the stored background| inside the pasted area.

    The generator composites over the *original* background and JPEG-encodes the result; the verifier can
    only composite over the *stored* (JPEG) background. The difference is two JPEG round trips, so it grows
    with the quantisation step. Measured on the demo inputs at R = 64, 100, 224 (worst row of 720 per
    setting): mean 3.6 / worst 8x8-block mean 11.9 at quality 95, 7.4 / 21.6 at 50, 9.8 / 30.8 at 20; on
    JPEG's worst cases at R = 224 (uniform noise, 1 px magenta/green stripes): 2.0 / 11.9 at 95, 6.2 / 27.2
    at 50. Chroma subsampling alone gives 8x8-block errors near 10 at sharp colour edges even at quality 100,
    hence the constant terms. The limits below are 2 to 4 times the worst case seen at every quality. Outside
    the pasted area (aligned to the 16 px JPEG MCU grid plus an 8 px margin for chroma upsampling) the
    encoder saw identical pixels in the background and the composite, so there the check is exact.
    """
    s = jpeg_scale(quality)
    return 6.0 + 12.0 * s, 24.0 + 40.0 * s


def paste_window(placement: Placement, resolution: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pasted box grown to the 16 px MCU grid plus 8 px, clipped to the frame."""
    x0 = max(0, placement.x // 16 * 16 - 8)
    y0 = max(0, placement.y // 16 * 16 - 8)
    x1 = min(resolution, -(-(placement.x + placement.width) // 16) * 16 + 8)
    y1 = min(resolution, -(-(placement.y + placement.height) // 16) * 16 + 8)
    return x0, y0, x1, y1


def composite_error(stored: np.ndarray, background: np.ndarray, fg_placed: np.ndarray, placement: Placement,
                    quality: int) -> str | None:
    """None if the stored composite matches the recomposite, else what is wrong."""
    resolution = stored.shape[0]
    expected = composite(background, fg_placed, placement).astype(np.int16)
    diff = np.abs(stored.astype(np.int16) - expected)
    x0, y0, x1, y1 = paste_window(placement, resolution)
    outside = np.ones(stored.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    if outside.any():
        wrong = int((diff[outside] != 0).any(axis=-1).sum())
        if wrong:
            return (f"{wrong} pixels outside the pasted area differ from the stored background "
                    f"(must be identical there); max error {int(diff[outside].max())}")
    inside = diff[y0:y1, x0:x1].astype(np.float64)
    mean_limit, block_limit = composite_tolerance(quality)
    mean = float(inside.mean())
    h, w = inside.shape[0] // 8 * 8, inside.shape[1] // 8 * 8
    block = float(inside[:h, :w].reshape(h // 8, 8, w // 8, 8, -1).mean(axis=(1, 3, 4)).max()) if h and w else 0.0
    if mean > mean_limit or block > block_limit:
        return (f"composite differs from the recomposite inside the pasted area: mean abs error {mean:.2f} "
                f"(limit {mean_limit:.2f}), worst 8x8 block {block:.2f} (limit {block_limit:.2f})")
    return None


def augmented_tolerance(quality: int) -> tuple[float, float]:
    """(mean, worst) limits on the 8x8 block-mean error of an augmented row, over the whole frame.

    The generator perturbs the original background and JPEG-encodes; verify perturbs the stored (JPEG)
    background, so every pixel carries two JPEG round trips, and the added noise is mostly quantised away in
    the stored image but not in the re-derivation. Comparing 8x8 block means per channel (|mean(stored -
    expected)| per block) cancels that high-frequency error and keeps the low-frequency content a wrong
    parameter changes. Measured with `--augment realistic`, 3 placements (worst row): demo inputs R=224 mean
    0.67 / worst block 14.7 at quality 95; uniform-noise backgrounds R=224 0.73 / 7.8 at 95, 3.0 / 16.6 at
    50, 5.6 / 30.8 at 20; scikit-image photographs R=224 0.57 / 10.6 at 95, 2.1 / 19.5 at 50; demo R=64 at
    20 5.0 / 30.4. The limits are 2 to 3 times those. A background brightness off by 0.05 gave a mean of 3.6
    or more at quality 95 on every demo row; smaller, local errors
    (angle, shadow) can hide inside the tolerance, which is why verify also compares every stored parameter
    with the one the seed draws.
    """
    s = jpeg_scale(quality)
    return 1.5 + 6.0 * s, 30.0 + 16.0 * s


def augmented_composite_error(stored: np.ndarray, expected: np.ndarray, quality: int) -> str | None:
    """None if the stored composite matches the re-derived one within `augmented_tolerance`."""
    diff = stored.astype(np.float64) - expected
    h, w = diff.shape[0] // 8 * 8, diff.shape[1] // 8 * 8
    blocks = np.abs(diff[:h, :w].reshape(h // 8, 8, w // 8, 8, -1).mean(axis=(1, 3)))
    (mean_limit, block_limit), mean, worst = augmented_tolerance(quality), float(blocks.mean()), float(blocks.max())
    if mean > mean_limit or worst > block_limit:
        return (f"composite differs from the one re-derived from the stored parameters: mean 8x8-block error "
                f"{mean:.2f} (limit {mean_limit:.2f}), worst block {worst:.2f} (limit {block_limit:.2f})")
    return None


# --------------------------------------------------------------------------------------------- images

def decode_checked(cell: dict | None, schema: ConfigSchema, column: str, size: tuple[int, int] | None,
                   stats: StatsBook) -> np.ndarray:
    """Pixels of an Image cell after checking the column's declared format, mode and size (ValueError naming
    what is wrong); their statistics go into `stats`."""
    spec = schema.column(column).image
    if cell is None or cell.get("bytes") is None:
        raise ValueError("no image bytes")
    data = cell["bytes"]
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for corrupt data
        raise ValueError(f"does not decode ({type(err).__name__}: {err})") from None
    if image.format != spec.format or image.mode != spec.mode:
        raise ValueError(f"is {image.format} mode {image.mode}, expected {spec.format} mode {spec.mode}")
    if size is not None and image.size != size:
        raise ValueError(f"is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}")
    pixels = np.asarray(image)
    stats[column].add(pixels, len(data))
    return pixels


def depth_problems(ref: Reference, schema: ConfigSchema, row: dict, with_images: bool, stats: StatsBook,
                   prefix: str = "") -> list[str]:
    if not ref.settings.with_depth:
        return []
    problems = []
    low, high = row["depth_min"], row["depth_max"]
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or not low <= high:
        problems.append(f"{prefix}depth_min {low} / depth_max {high}: need finite values with depth_min <= depth_max")
    if with_images:
        r = ref.settings.resolution
        try:
            levels = decode_checked(row["depth"], ref.schema(schema), "depth", (r, r), stats)
        except ValueError as err:
            problems.append(f"{prefix}depth {err}")
        else:
            if low == high and levels.any():  # a constant prediction is stored as an all-zero map
                problems.append(f"{prefix}depth_min == depth_max ({low}) but the depth PNG is not all zero")
    return problems


# --------------------------------------------------------------------------------------------- rows

def _id_problem(value, bound: int, column: str) -> str | None:
    return None if value is not None and 0 <= value < bound else f"{column} {value} outside [0, {bound})"


def _membership_problem(key: str, value: int, split: str, members: tuple[int, ...]) -> list[str]:
    return [] if value in members else [f"{key} {value} is not in split {split!r} (its {key}s: {list(members)[:20]})"]


def _input_row_problems(row: dict, key: str, bound: int, split: str, members: tuple[int, ...],
                        names: list[str]) -> tuple[list[str], bool]:
    """A backgrounds or foregrounds row's id, split and source file name; False when the id is out of range
    (then nothing else about the row can be checked)."""
    value = row[key]
    if problem := _id_problem(value, bound, key):
        return [problem], False
    problems = _membership_problem(key, value, split, members)
    if row["source"] != names[value]:
        problems.append(f"source {row['source']!r}, the manifest says {names[value]!r}")
    return problems, True


def cutout_identity_problems(ref: Reference, row: dict) -> list[str]:
    """A foregrounds row's category and annotation id, where the dataset has them, against the manifest's record
    of its cut-out."""
    record, groups = ref.manifest.foregrounds[row["fg_id"]], ref.manifest.column_groups
    keys = [key for key, present in (("category", groups["with_categories"]),
                                     ("category_id", groups["with_categories"]),
                                     ("annotation_id", groups["with_coco"])) if present]
    return [f"{key} {row[key]!r}, the manifest says {getattr(record, key)!r}" for key in keys
            if row[key] != getattr(record, key)]


def category_problems(ref: Reference, row: dict, fg_id: int) -> list[str]:
    """A default row's `category`: its cut-out's (object 1's), where the dataset has categories."""
    if not ref.manifest.with_categories:
        return []
    expected = ref.manifest.foregrounds[fg_id].category
    if row["category"] != expected:
        return [f"sample_id {row['sample_id']}: category {row['category']!r}, but cut-out {fg_id}'s is {expected!r}"]
    return []


def check_foreground_row(ref: Reference, row: dict, with_images: bool, split: str) -> RowResult:
    """Always decoded: the default config's masks and composites are checked against these pixels."""
    stats = StatsBook(ref.schema(FOREGROUNDS).peaks)
    problems, known = _input_row_problems(row, "fg_id", ref.plan.space.n_fg, split, ref.plan.foregrounds(split),
                                          ref.manifest.fg_names)
    if not known:
        return RowResult(problems, stats)
    problems += cutout_identity_problems(ref, row)
    try:
        rgba = decode_checked(row["image"], FOREGROUNDS, "image", None, stats)
        alpha = rgba[..., 3]
        if not (alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()):
            problems.append("image is not cropped to its alpha box")
        mask = decode_checked(row["mask"], FOREGROUNDS, "mask", (rgba.shape[1], rgba.shape[0]), stats)
        expected = np.where(alpha >= ref.settings.mask_threshold, 255, 0).astype(np.uint8)
        if not np.array_equal(mask, expected):
            problems.append(f"mask differs from alpha >= {ref.settings.mask_threshold} in "
                            f"{int((mask != expected).sum())} pixels")
    except ValueError as err:
        problems.append(f"image {err}")
    return RowResult(problems, stats)


def check_background_row(ref: Reference, row: dict, with_images: bool, split: str) -> RowResult:
    stats = StatsBook(ref.schema(BACKGROUNDS).peaks)
    problems, known = _input_row_problems(row, "bg_id", ref.plan.space.n_bg, split, ref.plan.backgrounds(split),
                                          ref.manifest.bg_names)
    if not known:
        return RowResult(problems, stats)
    r = ref.settings.resolution
    try:
        decode_checked(row["image"], BACKGROUNDS, "image", (r, r), stats)
    except ValueError as err:
        problems.append(f"image {err}")
    problems += depth_problems(ref, BACKGROUNDS, row, with_images, stats)
    problems += given_depth_problems(ref, row, with_images, stats)
    if FOCAL_COLUMN in row and not (row[FOCAL_COLUMN] is not None and row[FOCAL_COLUMN] > 0
                                    and math.isfinite(row[FOCAL_COLUMN])):
        problems.append(f"{FOCAL_COLUMN} {row[FOCAL_COLUMN]}: need the positive focal length, in pixels at R, that the "
                        "depth model's field of view gave")
    return RowResult(problems, stats)


def given_depth_problems(ref: Reference, row: dict, with_images: bool, stats: StatsBook) -> list[str]:
    """A stored --bg-depth-dir map (builder.contract.given_depth): its range always; decoded, its format, its levels'
    consistency and its hash against the one the manifest records for the map's file."""
    if not ref.manifest.stores_given_depth:
        return []
    low, high, r = row[given.MIN_COLUMN], row[given.MAX_COLUMN], ref.settings.resolution
    if not with_images or given.range_problems(low, high):
        return given.range_problems(low, high)
    try:
        stored = GivenDepth(decode_checked(row[given.COLUMN], BACKGROUNDS, given.COLUMN, (r, r), stats), low, high)
    except ValueError as err:
        return [f"{given.COLUMN} {err}"]
    record = ref.manifest.bg_depths[row["bg_id"]]
    problems = stored.problems(ref.settings.bg_depth_kind)
    if stored.sha256() != record.stored_sha256:
        problems.append(f"{given.COLUMN} (its levels and range) is not the map the manifest records for "
                        f"{record.name} (stored sha256 {record.stored_sha256[:12]}..., this one's "
                        f"{stored.sha256()[:12]}...)")
    return problems


def check_sample_row(ref: Reference, row: dict, with_images: bool, split: str) -> RowResult:
    stats = StatsBook(ref.schema(DEFAULT).peaks)
    sample_id, plan = row["sample_id"], ref.plan
    if sample_id is None or not 0 <= sample_id < plan.sample_count:
        return RowResult([f"sample_id {sample_id} outside the sample space [0, {plan.sample_count})"], stats)
    problems = []
    bg_id, fg_id, flip = plan.inputs_of(sample_id)
    if (belongs := plan.sample_split(sample_id)) != split:
        problems.append(f"sample_id {sample_id} (bg_id {bg_id}, fg_id {fg_id}) belongs to "
                        + (f"split {belongs!r}" if belongs else "no split (its pair is dropped)") + f", not {split!r}")
    ids = (row["bg_id"], row["fg_id"], row["flip"])
    if ids != (bg_id, fg_id, bool(flip)):
        problems.append(f"sample_id {sample_id} is (bg_id, fg_id, flip) = {(bg_id, fg_id, bool(flip))}, "
                        f"the row says {ids}")
    where = f"sample_id {sample_id}"
    problems += category_problems(ref, row, fg_id)
    foreground = ref.foregrounds.get(fg_id)
    if foreground is None:
        return RowResult(problems + [f"{where}: foreground {fg_id} is unavailable, cannot check placement or "
                                     "images"], stats)
    s = ref.settings
    stored = (row["x"], row["y"], float(np.float32(row["scale"])) if row["scale"] is not None else None)
    if s.with_ground and bg_id not in ref.grounds:
        return RowResult(problems + [f"{where}: background {bg_id}'s depth is unavailable, cannot check its "
                                     "ground placement"], stats)
    if ref.sized_by_stored_focal and bg_id not in ref.focals:
        return RowResult(problems + [f"{where}: background {bg_id}'s {FOCAL_COLUMN} is unavailable (the dataset's "
                                     "model predicts no field of view), cannot check its physical size"], stats)
    expected = ref.rule.place(sample_id, bg_id, fg_id, flip)
    drawn = expected.placement
    if expected.foot is not None:
        problems += standing_problems(ref, row, expected, bg_id, fg_id)
    if stored != (drawn.x, drawn.y, drawn.scale):
        problems.append(f"{where}: (x, y, scale) = {stored}, but seed {s.seed} " + (
            "and the background's stored depth give " if s.with_ground else "draws ")
            + f"{(drawn.x, drawn.y, drawn.scale)}")
    if s.with_augment:
        problems += augmentation_problems(ref, row, drawn)
    problems += depth_problems(ref, DEFAULT, row, with_images, stats, prefix=f"{where}: ")
    if s.with_objects:
        params = draw_augmentation(s, sample_id, drawn) if s.with_augment else None
        first = scene_object(fg_id, flip, expected, params)
        problems += scene_problems(ref, row, first, belongs or split, with_images, stats)
    elif with_images:
        # The placement as recorded in the row (so a wrong row shows up as a wrong mask too).
        height, width = placed_size(stored[2] or 0.0, *foreground.shape[:2], s.resolution)
        placement = Placement(row["x"], row["y"], stored[2], width, height)
        hidden = row_hidden(ref, row) if s.with_ground else None
        problems += sample_image_problems(ref, row, placement, (bg_id, fg_id, flip), stats, hidden)
    return RowResult(problems, stats)


def decode_sample_images(ref: Reference, row: dict, stats: StatsBook) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every image column this dataset's `default` rows hold but depth (`depth_problems` checks it), decoded and
    checked for format, mode and size: {column: pixels}, and the problems of those that fail."""
    s, r = ref.settings, ref.settings.resolution
    decoded, problems = {}, []
    for column in DEFAULT.image_columns(False, s.with_augment, s.placement_mode, s.with_objects):
        try:
            decoded[column.name] = decode_checked(row[column.name], DEFAULT, column.name, (r, r), stats)
        except ValueError as err:
            problems.append(f"sample_id {row['sample_id']}: {column.name} {err}")
    return decoded, problems


def expected_scene(ref: Reference, sample_id: int, first: SceneObject, split: str) -> tuple[Scene, SceneImages] | None:
    """The row's objects re-derived from the seed and pasted over the stored background (None: an input is
    unavailable)."""
    s, bg_id = ref.settings, ref.plan.inputs_of(sample_id).bg
    foregrounds = ref.plan.foregrounds(split)
    if bg_id not in ref.backgrounds or not ref.foreground_shapes.keys() >= set(foregrounds):
        return None
    return derive_scene(s, sample_id, first, ref.backgrounds[bg_id], foregrounds, ref.rule, bg_id)


def scene_problems(ref: Reference, row: dict, first: SceneObject, split: str, with_images: bool,
                   stats: StatsBook) -> list[str]:
    """A several-object row: every object re-derived (draws, paste order, depth test), then with images the
    union mask, instance mask, object 1's amodal mask and the composite."""
    s, where = ref.settings, f"sample_id {row['sample_id']}"
    derived = expected_scene(ref, row["sample_id"], first, split)
    if derived is None:
        return [f"{where}: an input of its scene is unavailable, cannot re-derive its objects"]
    scene, images = derived
    categories = [f.category for f in ref.manifest.foregrounds] if ref.manifest.with_categories else None
    problems = objects_problems(row, scene, images, split, ref.plan.foregrounds(split), categories)
    if not with_images:
        return problems
    decoded, decode_problems = decode_sample_images(ref, row, stats)
    problems += decode_problems + scene_mask_problems(row, decoded, images)
    if s.with_ground:
        problems += amodal_problems(row, decoded, np.where(images.footprints[0], 255, 0).astype(np.uint8),
                                    images.visible[0])
    if "fg_bg" in decoded and (error := augmented_composite_error(decoded["fg_bg"], images.image, s.jpeg_quality)):
        problems.append(f"{where}: {error}")
    return problems


def standing_problems(ref: Reference, row: dict, expected: Placed, bg_id: int, fg_id: int) -> list[str]:
    """A row placed by a standing rule: its stored placed fields and mode against the re-derived ones, and the
    stored foot against the rule itself: on ground, the scale its size law gives, the box standing on it."""
    s, where = ref.settings, f"sample_id {row['sample_id']}"
    names = (*expected.fields, "placement_mode")
    stored, wanted = tuple(row[name] for name in names), (*expected.fields.values(), expected.mode)
    if not all(same_value(value, want) for value, want in zip(stored, wanted)):
        return [f"{where}: ({', '.join(names)}) = {stored}, but seed {s.seed} and the background's stored depth give "
                f"{wanted}"]
    if expected.mode != ref.rule.mode:
        return []
    foot_x, foot_y = expected.foot
    scale = float(ref.rule.sized(bg_id, fg_id)[0][foot_y, foot_x])
    height, width = placed_size(scale, *ref.foreground_shapes[fg_id], s.resolution)
    problems = [] if ref.rule.ground(bg_id).ground[foot_y, foot_x] else [
        f"{where}: foot ({foot_x}, {foot_y}) is not on ground"]
    if row["scale"] is None or float(np.float32(row["scale"])) != scale:
        problems.append(f"{where}: scale {row['scale']} does not follow {ref.rule.sized_by} (expected {scale})")
    if (row["x"], row["y"]) != foot_box(foot_x, foot_y, height, width):
        problems.append(f"{where}: the box at ({row['x']}, {row['y']}) does not stand on the foot "
                        f"({foot_x}, {foot_y}); expected {foot_box(foot_x, foot_y, height, width)}")
    return problems


def row_hidden(ref: Reference, row: dict) -> np.ndarray | None:
    """What hides the row's cut-out: scenery nearer than its stored foot (None for a uniform row)."""
    ground, r = ref.grounds.get(row["bg_id"]), ref.settings.resolution
    if (row["placement_mode"] != ref.settings.placement_mode or ground is None
            or not (0 <= row["foot_x"] < r and 0 <= row["foot_y"] < r)):
        return None
    return nearer_scenery(ground, float(ground.disparity[row["foot_y"], row["foot_x"]]))


def augmentation_problems(ref: Reference, row: dict, drawn: Placement) -> list[str]:
    """The stored parameters against those the seed draws for this sample."""
    expected = draw_augmentation(ref.settings, row["sample_id"], drawn).columns()
    wrong = [f"{name} = {row[name]!r} (seed {ref.settings.seed} draws {value!r})" for name, value in expected.items()
             if not same_value(row[name], value)]
    return [f"sample_id {row['sample_id']}: augmentation parameter {', '.join(wrong)}"] if wrong else []


def sample_image_problems(ref: Reference, row: dict, placement: Placement, ids: tuple[int, int, int],
                          stats: StatsBook, hidden: np.ndarray | None = None) -> list[str]:
    """The mask (and alpha) and bbox against the cut-out placed as the row says; the composite against the
    recomposite (an augmented row: re-derived from its stored parameters over the stored background). Ground
    mode: `hidden` pixels are taken out of the mask, and the amodal mask and occlusion checked."""
    s, (bg_id, fg_id, flip) = ref.settings, ids
    where, r = f"sample_id {row['sample_id']}", s.resolution
    decoded, problems = decode_sample_images(ref, row, stats)
    if not (0 <= placement.x <= r - placement.width and 0 <= placement.y <= r - placement.height):
        return problems + [f"{where}: the foreground at x={placement.x} y={placement.y} "
                           f"({placement.width}x{placement.height}) is not inside the frame"]
    amodal = placed = placed_foreground(ref.foregrounds[fg_id], bool(flip), placement)
    if hidden is not None:
        placed = hide(placed, placement, hidden)
    background = ref.backgrounds.get(bg_id)
    if s.with_augment:
        return problems + augmented_image_problems(ref, row, placement, amodal, background, decoded, hidden)
    if s.with_ground:
        problems += amodal_problems(row, decoded, placed_mask(amodal, placement, r, s.mask_threshold),
                                    placed_mask(placed, placement, r, s.mask_threshold))
    if "mask" in decoded:
        mask, expected = decoded["mask"], placed_mask(placed, placement, r, s.mask_threshold)
        if not np.array_equal(mask, expected):
            problems.append(f"{where}: mask differs in {int((mask != expected).sum())} pixels from foreground "
                            f"{fg_id}'s alpha >= {s.mask_threshold} placed at flip={bool(flip)} x={placement.x} "
                            f"y={placement.y} scale={placement.scale}")
        problems += _bbox_problems(row, mask)
    if "fg_bg" in decoded and background is None:
        problems.append(f"{where}: background {bg_id} is unavailable, cannot check the composite")
    elif "fg_bg" in decoded:
        partly_hidden = hidden is not None and not np.array_equal(amodal, placed)
        if error := ground_composite_error(decoded["fg_bg"], background, placed, placement, s.jpeg_quality,
                                           partly_hidden):
            problems.append(f"{where}: {error}")
    return problems


def ground_composite_error(stored: np.ndarray, background: np.ndarray, placed: np.ndarray, placement: Placement,
                           quality: int, partly_hidden: bool) -> str | None:
    """`composite_error`, except for a partly hidden cut-out: the occlusion's outline is a sharp edge of any
    shape (with noisy depth, a speckle) that the two JPEG round trips blur differently, so such a row is compared
    by 8x8 block means as an augmented row is (`augmented_tolerance`); the mask check stays exact."""
    if not partly_hidden:
        return composite_error(stored, background, placed, placement, quality)
    return augmented_composite_error(stored, composite(background, placed, placement), quality)


def _bbox_problems(row: dict, mask: np.ndarray) -> list[str]:
    if list(row["bbox"] or []) != mask_bbox(mask):
        return [f"sample_id {row['sample_id']}: bbox {row['bbox']} is not the mask's box {mask_bbox(mask)}"]
    return []


def amodal_problems(row: dict, decoded: dict, amodal: np.ndarray, visible: np.ndarray) -> list[str]:
    """Ground mode: the amodal mask is the whole placed footprint; its box and the occlusion follow."""
    where, problems = f"sample_id {row['sample_id']}", []
    if "amodal_mask" in decoded and not np.array_equal(decoded["amodal_mask"], amodal):
        problems.append(f"{where}: amodal_mask differs in {int((decoded['amodal_mask'] != amodal).sum())} pixels "
                        "from the whole placed footprint")
    if list(row["amodal_bbox"] or []) != mask_bbox(amodal):
        problems.append(f"{where}: amodal_bbox {row['amodal_bbox']} is not the footprint's box {mask_bbox(amodal)}")
    expected = occlusion(amodal, visible)
    if row["occlusion"] is None or float(np.float32(row["occlusion"])) != expected:
        problems.append(f"{where}: occlusion {row['occlusion']}, but the depth test hides {expected} of the footprint")
    return problems


def augmented_image_problems(ref: Reference, row: dict, placement: Placement, placed: np.ndarray,
                             background: np.ndarray | None, decoded: dict, hidden: np.ndarray | None) -> list[str]:
    """Alpha exactly, mask = alpha >= threshold, bbox, and the whole frame within the augmented tolerance."""
    s, where = ref.settings, f"sample_id {row['sample_id']}"
    if background is None:
        return [f"{where}: background {row['bg_id']} is unavailable, cannot re-derive the augmented row"]
    try:
        params = Augmentation.from_row(row)
        foot = (row["foot_x"], row["foot_y"]) if s.with_ground else None
        image, alpha = augmented_composite(background, placed, placement, params, s.mask_threshold, hidden, foot)
    except (TypeError, ValueError, KeyError) as err:
        return [f"{where}: cannot re-derive the augmented composite from the stored parameters ({err})"]
    problems = []
    if s.with_ground:
        amodal = np.where(alpha >= s.mask_threshold, 255, 0).astype(np.uint8)
        alpha = alpha if hidden is None else np.where(hidden, np.uint8(0), alpha)
        problems += amodal_problems(row, decoded, amodal, np.where(alpha >= s.mask_threshold, 255, 0))
    if "alpha" in decoded and not np.array_equal(decoded["alpha"], alpha):
        problems.append(f"{where}: alpha differs in {int((decoded['alpha'] != alpha).sum())} pixels from the "
                        f"re-derived alpha ({params.blend} blend, angle {params.fg_angle})")
    if "mask" in decoded:
        expected = np.where(alpha >= s.mask_threshold, 255, 0).astype(np.uint8)
        if not np.array_equal(decoded["mask"], expected):
            problems.append(f"{where}: mask differs in {int((decoded['mask'] != expected).sum())} pixels from "
                            f"the re-derived alpha >= {s.mask_threshold}")
        problems += _bbox_problems(row, decoded["mask"])
    if "fg_bg" in decoded:
        if error := augmented_composite_error(decoded["fg_bg"], image, s.jpeg_quality):
            problems.append(f"{where}: {error}")
    return problems


# verify's row check of each config (the registry in builder.rows.configs binds the renderers; generation never
# loads this module)
ROW_CHECKS = {DEFAULT.name: check_sample_row, BACKGROUNDS.name: check_background_row,
              FOREGROUNDS.name: check_foreground_row}
