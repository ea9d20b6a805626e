"""Backgrounds' depth maps given by the user (`--bg-depth-dir`) or by the demo: found by file stem, each read once and
checked up front (keeping its hash), cropped and resized as their background is (NaN where unknown); the user's stored in `backgrounds` (builder.contract.
given_depth) and read back from there; and the model's map as stored in a `backgrounds` row. Generation and verify
read a dataset's maps as disparity here alike, so both derive placements from the same numbers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.contract import given_depth as given
from builder.contract.depth_storage import depth_storage
from builder.contract.errors import UsageError
from builder.contract.given_depth import GivenDepth
from builder.contract.settings import ContentSettings, Manifest, RunOptions
from builder.rows.assets import Inputs
from builder.rows.demo import demo_ground_files
from builder.rows.encode import decode, encode_png16, image_cell
from builder.rows.files import InputFile, oriented_size, read_input

DEPTH_SUFFIXES = (".png", ".npy")
MAX_UNKNOWN = 0.5  # a map with more unknown pixels than this share is refused
ASPECT_TOLERANCE = 0.01  # relative difference of width/height allowed between a map and its background


def read_depth_folder(folder: Path, bg_files: list[InputFile], problems: list[str], notes: list[str]
                      ) -> list[InputFile]:
    """Each background's map (same stem, .png or .npy, not read yet), in background order; maps of no background
    are noted."""
    if not folder.is_dir():
        problems.append(f"{folder}: depth folder does not exist; check --bg-depth-dir")
        return []
    by_stem: dict[str, list[Path]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and Path(entry.name).suffix.lower() in DEPTH_SUFFIXES:
            by_stem.setdefault(Path(entry.name).stem, []).append(Path(entry.path))
    files = []
    for bg in bg_files:
        paths = by_stem.pop(Path(bg.name).stem, [])
        if len(paths) != 1:
            problems.append(f"{folder / Path(bg.name).stem}.png/.npy: " + (
                f"no depth map for background {bg.name}; add one (same file stem), or remove the background"
                if not paths else f"{len(paths)} depth maps for background {bg.name}; keep one"))
            continue
        files.append(InputFile(paths[0].name, paths[0]))
    notes += [f"{paths[0]}: a depth map for no background; ignored" for paths in by_stem.values()]
    return files


def stored_disparity(row: dict, settings: ContentSettings, given_depth: bool) -> np.ndarray:
    """A `backgrounds` row's stored depth as ground placement reads it: with `given_depth` (the dataset stores the
    `--bg-depth-dir` maps) its given map, else the model's: the levels of a relative map, 1 / metres of a metric one
    (builder.contract.depth_kinds)."""
    if given_depth:
        return disparity_of(read_given_depth(row).values(), settings.bg_depth_kind).astype(np.float32)
    return settings.kind.disparity(decode(row["depth"]["bytes"]), row["depth_min"], row["depth_max"],
                                   depth_storage(settings.depth_bits))


def given_depth_cells(map_: GivenDepth) -> dict:
    """A given map's cells in its `backgrounds` row."""
    return {given.COLUMN: image_cell(encode_png16(map_.levels)), given.MIN_COLUMN: map_.low,
            given.MAX_COLUMN: map_.high}


def read_given_depth(row: dict) -> GivenDepth:
    """The given map a `backgrounds` row stores."""
    return GivenDepth(decode(row[given.COLUMN]["bytes"]), row[given.MIN_COLUMN], row[given.MAX_COLUMN])


def demo_depth_files() -> list[InputFile]:
    return [InputFile.in_memory(name, data) for name, data in demo_ground_files()[1]]


def read_values(name: str, data: bytes) -> np.ndarray:
    """The map's values as float64 (ValueError when it is not a 2-D 16-bit PNG or numeric .npy array)."""
    try:
        if name.lower().endswith(".npy"):
            values = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            image = Image.open(io.BytesIO(data))
            image.load()
            if image.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "F"):
                raise ValueError(f"is a {image.mode} PNG")
            values = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"unreadable depth map ({err}); save a single-channel 16-bit PNG or a 2-D float .npy") \
            from None
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"holds a {values.ndim}-D {values.dtype} array; save a 2-D float array (H x W)")
    return values.astype(np.float64)


def known_values(values: np.ndarray, kind: str) -> np.ndarray:
    """The map with NaN where unknown: non-finite values, and 0 in a `depth` map (distance). ValueError for a
    negative distance, a map mostly unknown or constant."""
    known = np.isfinite(values)
    if kind == "depth":
        if (values[known] < 0).any():
            raise ValueError(f"has negative distances (min {values[known].min():g}); a `depth` map holds distances "
                             ">= 0 (0 = unknown): fix the map, or pass --bg-depth-kind disparity if it is disparity")
        known &= values != 0
    if known.mean() <= 1 - MAX_UNKNOWN:
        raise ValueError(f"is {1 - known.mean():.0%} unknown (non-finite{' or 0' if kind == 'depth' else ''}); "
                         f"at most {MAX_UNKNOWN:.0%} may be: fill its holes or remove the background")
    if np.ptp(values[known]) == 0:
        raise ValueError(f"is constant ({values[known][0]:g}) where known: it has no geometry to place by; "
                         "give a real depth map or remove the background")
    return np.where(known, values, np.nan)


def disparity_of(values: np.ndarray, kind: str) -> np.ndarray:
    """Disparity (larger = nearer) of a map's known values: 1 / distance in a `depth` map; NaN stays NaN."""
    if kind != "depth":
        return values
    with np.errstate(divide="ignore"):
        return 1.0 / values


def fit_depth(values: np.ndarray, bg_size: tuple[int, int] | None, resolution: int) -> np.ndarray:
    """The map cropped and resized as ImageOps.fit crops and resizes its background (centre crop to a square,
    then R x R), but nearest-neighbour: depth is never blended across an object's edge and unknown stays
    unknown. float32, NaN where unknown. ValueError when its aspect is not the background's (`bg_size`; None:
    not checked, as verify has only the stored crops)."""
    height, width = values.shape
    bg_width, bg_height = bg_size or (width, height)
    if abs(width / height - bg_width / bg_height) > ASPECT_TOLERANCE * bg_width / bg_height:
        raise ValueError(f"is {width}x{height} but its background is {bg_width}x{bg_height}: give a map with the "
                         "background's aspect ratio (any size)")
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    image = Image.fromarray(values.astype(np.float32), "F")
    return np.asarray(image.resize((resolution, resolution), Image.Resampling.NEAREST, box=box), dtype=np.float32)


def decode_depth_map(file: InputFile, bg_file: InputFile | None, kind: str, resolution: int,
                     data: bytes | None = None) -> np.ndarray:
    """A background's map, checked, cropped and resized as its background: R x R float32 in its kind, NaN where
    unknown (a `disparity` map is what ground placement reads). `data`: the file's bytes, else it is read now."""
    values = read_values(file.name, file.read() if data is None else data)
    return fit_depth(known_values(values, kind), bg_file and oriented_size(bg_file), resolution)


def given_depth_of(file: InputFile, kind: str, resolution: int) -> GivenDepth:
    """A --bg-depth-dir map as its `backgrounds` row stores it (its aspect against the background's was checked when
    the inputs were loaded, `decode_depth_maps`)."""
    return GivenDepth.of(decode_depth_map(file, None, kind, resolution))


def decode_depth_maps(files: list[InputFile], bg_files: list[InputFile], kind: str, resolution: int,
                      folder: Path | None, problems: list[str], keep: Callable[[np.ndarray], Any] = lambda m: m
                      ) -> tuple[list[InputFile], list]:
    """Every map read once (hashed) and decoded, one at a time: the files with their hashes, and what `keep` makes
    of each map; each problem naming its file (under `folder`, when the maps come from one)."""
    hashed, kept = [], []
    for file, bg in zip(files, bg_files):
        where = f"{folder / file.name if folder else file.name} (depth of {bg.name})"
        file, data = read_input(file, where, problems)
        if data is None:
            continue
        try:
            kept.append(keep(decode_depth_map(file, bg, kind, resolution, data)))
        except ValueError as err:
            problems.append(f"{where}: {err}")
        hashed.append(file)
    return hashed, kept


def attach_bg_depths(inputs: Inputs, content: ContentSettings, run: RunOptions) -> Inputs:
    """Ground placement's maps onto `inputs` (every problem at once): the demo's disparity, placed by as it is; or
    --bg-depth-dir's hashes as `backgrounds` stores the maps (render_background stores each; placement reads them back
    from there, builder/run/pipeline.py, like the model's stored background depth without either)."""
    if not content.with_ground or not (run.demo or run.bg_depth_dir):
        return inputs
    problems, notes = [], []
    files = demo_depth_files() if run.demo else read_depth_folder(run.bg_depth_dir, inputs.bg_files, problems, notes)
    kind = "disparity" if run.demo else content.bg_depth_kind
    keep = (lambda m: m) if run.demo else (lambda m: GivenDepth.of(m).sha256())
    files, kept = decode_depth_maps(files, inputs.bg_files, kind, content.resolution, run.bg_depth_dir, problems,
                                    keep)
    if problems:
        raise UsageError(problems, notes)
    inputs.warnings += notes
    inputs.bg_depth_files = files
    if run.demo:
        inputs.bg_depths = kept
    else:
        inputs.given_depth_sha256 = kept
    return inputs


def demo_bg_depths(manifest: Manifest) -> list[np.ndarray]:
    """verify: the maps a demo ground dataset was placed by (the demo's own, made again; a dataset stores only
    --bg-depth-dir maps). UsageError for maps recorded but neither stored nor the demo's."""
    demo = demo_depth_files()
    if [(f.name, f.sha256) for f in demo] != [(r.name, r.sha256) for r in manifest.bg_depths]:
        raise UsageError(["this dataset was placed by --bg-depth-dir maps it does not store (made before datasets "
                          "stored them): regenerate it with this version to verify it"])
    return [decode_depth_map(f, None, "disparity", manifest.settings.resolution) for f in demo]


def rederived_given_depth_hashes(manifest: Manifest, folder: Path) -> list[str]:
    """verify --bg-depth-dir: the hash of each map made again from the user's file as generation stored it (one map
    at a time, none kept). UsageError naming a file that is missing or is not the one the manifest records
    (sha256)."""
    hashes, problems, settings = [], [], manifest.settings
    for record in manifest.bg_depths:
        path = Path(folder) / record.name
        try:
            data = path.read_bytes()
        except OSError as err:
            problems.append(f"{path}: cannot read ({err.strerror}); pass the --bg-depth-dir the dataset was made with")
            continue
        file = InputFile(record.name, path).hashed(data)
        if file.sha256 != record.sha256:
            problems.append(f"{path}: differs from the map the dataset was made with (sha256 {record.sha256[:12]}...); "
                            "pass the --bg-depth-dir the dataset was made with")
            continue
        map_ = decode_depth_map(file, None, settings.bg_depth_kind, settings.resolution, data)
        hashes.append(GivenDepth.of(map_).sha256())
    if problems:
        raise UsageError(problems)
    return hashes
