"""Load and validate the inputs: every problem is collected and reported at once, before any model loads."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageOps

from builder.contract.errors import UsageError
from builder.contract.settings import ContentSettings, InputRecord, RunOptions, with_categories
from builder.rows.demo import demo_files, demo_ground_files
from builder.rows.files import InputFile, open_image, read_folder, to_8bit
from builder.rows.sources import Cutout, Listing, decode_cutouts, list_cutouts


@dataclasses.dataclass
class Inputs:
    """Decoded inputs: backgrounds R x R x 3 uint8, foregrounds h x w x 4 uint8 cropped to their alpha box, and
    the cut-outs as their source listed them (`source`: the manifest's account of that source, if any)."""

    backgrounds: list[np.ndarray]
    foregrounds: list[np.ndarray]
    bg_files: list[InputFile]
    cutouts: list[Cutout]
    warnings: list[str]
    source: dict | None = None
    bg_depths: list[np.ndarray] | None = None  # ground placement's disparity maps (R x R float32, NaN unknown)
    bg_depth_files: list[InputFile] | None = None  # the files they came from (their hashes go into the manifest)

    @staticmethod
    def records(files: list[InputFile]) -> list[InputRecord]:
        """The manifest's record of each input file: name, content hash, size."""
        return [InputRecord(f.name, f.sha256, len(f.data)) for f in files]

    @property
    def with_categories(self) -> bool:
        return with_categories(self.cutouts)


def decode_background(file: InputFile, resolution: int, notes: list[str]) -> np.ndarray:
    """Center-crop to square and resize to R x R RGB."""
    image = to_8bit(open_image(file)).convert("RGB")
    side = min(image.size)
    if side < resolution:
        notes.append(f"{file.name}: {image.width}x{image.height} is smaller than --resolution {resolution}; upscaled")
    image = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def _decode_backgrounds(files: list[InputFile], resolution: int, problems: list[str], notes: list[str]):
    arrays = []
    for file in files:
        try:
            arrays.append(decode_background(file, resolution, notes))
        except ValueError as err:
            problems.append(f"{file.name} (background): {err}")
    return arrays


def _note_duplicates(files: list[InputFile], role: str, notes: list[str]) -> None:
    first_name = {}
    for file in files:
        if file.sha256 in first_name:
            notes.append(f"{file.name}: same content as {first_name[file.sha256]} ({role}s); both are used")
        first_name.setdefault(file.sha256, file.name)


def list_foregrounds(content: ContentSettings, run: RunOptions, problems: list[str], notes: list[str]) -> Listing:
    """The run's cut-outs as listed, nothing decoded: the demo's, or its source's (builder.rows.sources)."""
    if run.demo:
        return Listing([Cutout(name, InputFile(name, data)) for name, data in demo_files()[1]])
    return list_cutouts(content, run, problems, notes)


def load_inputs(content: ContentSettings, run: RunOptions) -> Inputs:
    """Read, decode and validate every input; raise UsageError listing all problems."""
    problems, notes = [], []
    if run.demo:  # ground mode: scenes with exact depth (builder.rows.bg_depth reads their maps)
        bg_files = [InputFile(name, data) for name, data in (demo_ground_files() if content.with_ground
                                                             else demo_files())[0]]
    else:
        bg_files = read_folder(run.bg_dir, "background", "--bg-dir", problems, notes)
    listing = list_foregrounds(content, run, problems, notes)
    backgrounds = _decode_backgrounds(bg_files, content.resolution, problems, notes)
    foregrounds = decode_cutouts(listing.cutouts, content.mask_threshold, problems, notes)
    _note_duplicates(bg_files, "background", notes)
    if listing.source is None or listing.source["kind"] != "coco":  # a COCO image holds many instances
        _note_duplicates([c.file for c in listing.cutouts], "foreground", notes)
    if problems:
        raise UsageError(problems, notes)
    return Inputs(backgrounds, foregrounds, bg_files, listing.cutouts, notes, listing.source)
