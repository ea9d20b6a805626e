"""The run's inputs, validated: every file read once (hashed, decoded in full, every problem collected and
reported at once, before any model loads), and kept as records: names, hashes, sizes, never pixels. Rows decode
what they need on first use (builder.rows.pixels)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from builder.contract.errors import UsageError
from builder.contract.settings import ContentSettings, PhysicalInputs, RunOptions, with_categories
from builder.rows.demo import demo_files, demo_ground_files
from builder.rows.files import InputFile, list_folder, open_image, oriented_size, read_input, to_8bit
from builder.rows.sources import Cutout, Listing, list_cutouts, survey_cutouts


@dataclasses.dataclass
class Inputs:
    """The inputs as records: the backgrounds' files and the cut-outs as their source listed them, hashed and
    with their sizes (`source`: the manifest's account of that source, if any)."""

    bg_files: list[InputFile]
    cutouts: list[Cutout]
    warnings: list[str]
    source: dict | None = None
    bg_depths: list[np.ndarray] | None = None  # the demo's disparity maps, placed by as they are (R x R, NaN unknown)
    bg_depth_files: list[InputFile] | None = None  # the demo's or --bg-depth-dir's (their hashes go into the manifest)
    # --bg-depth-dir: each map's hash as `backgrounds` stores it (builder.contract.given_depth), placed by as read back
    # from there (builder.run.pipeline)
    given_depth_sha256: list[str] | None = None
    physical: PhysicalInputs | None = None  # --placement-mode physical: original sizes and real heights

    @property
    def with_categories(self) -> bool:
        return with_categories(self.cutouts)

    @property
    def stores_given_depth(self) -> bool:
        """The run's `backgrounds` rows store the --bg-depth-dir maps."""
        return self.given_depth_sha256 is not None


def background_image(data: bytes) -> Image.Image:
    """A background file's image as RGB, whatever its mode (ValueError when it does not decode)."""
    return to_8bit(open_image(data)).convert("RGB")


def decode_background(file: InputFile, resolution: int) -> np.ndarray:
    """Center-crop to square and resize to R x R RGB, the file read now."""
    image = ImageOps.fit(background_image(file.read()), (resolution, resolution), method=Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def survey_backgrounds(files: list[InputFile], resolution: int, problems: list[str],
                       notes: list[str]) -> list[InputFile]:
    """Each background read once, hashed and decoded in full (nothing kept): the files with their hashes."""
    surveyed = []
    for file in files:
        file, data = read_input(file, str(file.path or file.name), problems)
        if data is None:
            continue
        try:
            image = background_image(data)
        except ValueError as err:
            problems.append(f"{file.name} (background): {err}")
            continue
        if min(image.size) < resolution:
            notes.append(f"{file.name}: {image.width}x{image.height} is smaller than --resolution {resolution}; "
                         "upscaled")
        surveyed.append(file)
    return surveyed


def _note_duplicates(files: list[InputFile], role: str, notes: list[str]) -> None:
    first_name = {}
    for file in files:
        if file.sha256 in first_name:
            notes.append(f"{file.name}: same content as {first_name[file.sha256]} ({role}s); both are used")
        first_name.setdefault(file.sha256, file.name)


def height_keys(cutout: Cutout) -> tuple[str, ...]:
    """The names under which --fg-heights may give a cut-out's height, the first found wins: its file stem, then
    its category."""
    return (Path(cutout.name).stem, *([cutout.category] if cutout.category is not None else []))


def read_heights(path: Path, cutouts: list[Cutout], problems: list[str], notes: list[str]) -> tuple[float, ...]:
    """--fg-heights: each cut-out's real height in metres, in cut-out order, from lines `name,height_m` (a header
    line `name,height_m` may come first). A name is only ever compared with `height_keys`, never opened."""
    try:
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problems.append(f"{path}: cannot read the heights file ({getattr(err, 'strerror', None) or err}); check "
                        "--fg-heights, a UTF-8 CSV")
        return ()
    heights: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        cells = [cell.strip() for cell in line]
        if not any(cells) or (number == 1 and cells == ["name", "height_m"]):
            continue
        if problem := _height_line_problem(cells, heights):
            problems.append(f"{path}: line {number}: {problem}")
            continue
        heights[cells[0]] = float(cells[1])
    found = [next((heights[key] for key in height_keys(c) if key in heights), None) for c in cutouts]
    if missing := [c.name for c, height in zip(cutouts, found) if height is None]:
        problems.append(f"{path}: no height for {len(missing)} cut-out(s): {', '.join(missing[:10])}"
                        f"{' ...' if len(missing) > 10 else ''}; add a line `stem,height_m` (or `category,height_m`) "
                        "for each")
    used = {key for c in cutouts for key in height_keys(c)}
    notes += [f"{path}: {name!r} names no cut-out or category; ignored" for name in heights if name not in used]
    return tuple(height for height in found if height is not None)


def _height_line_problem(cells: list[str], heights: dict[str, float]) -> str | None:
    if len(cells) != 2:
        return f"{len(cells)} fields; write name,height_m"
    name, value = cells
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return f"name {name!r}: give a cut-out's file stem or a category (no folder, no path)"
    if name in heights:
        return f"{name!r} appears twice; keep one line"
    try:
        height = float(value)
    except ValueError:
        height = math.nan
    return None if math.isfinite(height) and height > 0 else \
        f"height_m {value!r} of {name!r}: give a positive number of metres"


def list_foregrounds(content: ContentSettings, run: RunOptions, problems: list[str], notes: list[str]) -> Listing:
    """The run's cut-outs as listed, nothing read: the demo's, or its source's (builder.rows.sources)."""
    if run.demo:
        return Listing([Cutout(name, InputFile.in_memory(name, data)) for name, data in demo_files()[1]])
    return list_cutouts(content, run, problems, notes)


def load_inputs(content: ContentSettings, run: RunOptions) -> Inputs:
    """List every input, read each file once (hashed and decoded in full, one at a time), keep the records; raise
    UsageError listing all problems."""
    problems, notes = [], []
    if run.demo:  # ground mode: scenes with exact depth (builder.rows.bg_depth reads their maps)
        bg_files = [InputFile.in_memory(name, data) for name, data in (demo_ground_files() if content.with_ground
                                                                       else demo_files())[0]]
    else:
        bg_files = list_folder(run.bg_dir, "background", "--bg-dir", problems, notes)
    listing = list_foregrounds(content, run, problems, notes)
    bg_files = survey_backgrounds(bg_files, content.resolution, problems, notes)
    cutouts = survey_cutouts(listing.cutouts, content.mask_threshold, problems, notes)
    _note_duplicates(bg_files, "background", notes)
    if listing.source is None or listing.source["kind"] != "coco":  # a COCO image holds many instances
        _note_duplicates([c.file for c in cutouts], "foreground", notes)
    physical = content.placement_mode == "physical"
    heights = read_heights(run.fg_heights, cutouts, problems, notes) if physical else ()
    if problems:
        raise UsageError(problems, notes)
    return Inputs(bg_files, cutouts, notes, listing.source,
                  physical=PhysicalInputs(tuple(oriented_size(f) for f in bg_files), heights, content.focal_px is None)
                  if physical else None)
