"""Load and validate the inputs: every problem is collected and reported at once, before any model loads."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from builder.contract.errors import UsageError
from builder.contract.settings import ContentSettings, InputRecord, RunOptions
from builder.rows.demo import demo_files, demo_ground_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# Pillow's default bomb limit (~89 Mpx) warns; we refuse above it rather than decode gigabytes per file.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
MIN_OPAQUE_PIXELS = 64


@dataclasses.dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclasses.dataclass
class Inputs:
    """Decoded inputs: backgrounds R x R x 3 uint8, foregrounds h x w x 4 uint8 cropped to their alpha box."""

    backgrounds: list[np.ndarray]
    foregrounds: list[np.ndarray]
    bg_files: list[InputFile]
    fg_files: list[InputFile]
    warnings: list[str]
    bg_depths: list[np.ndarray] | None = None  # ground placement's disparity maps (R x R float32, NaN unknown)
    bg_depth_files: list[InputFile] | None = None  # the files they came from (their hashes go into the manifest)

    @staticmethod
    def records(files: list[InputFile]) -> list[InputRecord]:
        """The manifest's record of each input file: name, content hash, size."""
        return [InputRecord(f.name, f.sha256, len(f.data)) for f in files]


def read_folder(folder: Path, role: str, problems: list[str], notes: list[str]) -> list[InputFile]:
    """Image files of a folder, sorted by name; other files are skipped with a note."""
    flag = "--bg-dir" if role == "background" else "--fg-dir"
    if not folder.is_dir():
        problems.append(f"{folder}: {role} folder does not exist; check {flag}")
        return []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        problems.append(f"{folder}: cannot list the {role} folder ({err.strerror}); fix its permissions")
        return []
    files, unreadable = [], 0
    for entry in entries:
        if not entry.is_file():
            continue
        if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
            notes.append(f"{entry.path}: not an image file name, skipped")
            continue
        try:
            files.append(InputFile(entry.name, Path(entry.path).read_bytes()))
        except OSError as err:
            unreadable += 1
            problems.append(f"{entry.path}: cannot read ({err.strerror}); fix its permissions or remove it")
    if not files and not unreadable:
        problems.append(f"{folder}: no {role} images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def open_image(file: InputFile) -> Image.Image:
    """Decode fully (so truncation shows now), refuse decompression bombs, apply EXIF orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(file.data))
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"{image.width}x{image.height} pixels is over the {MAX_PIXELS:,}-pixel limit; "
                                 "downscale it first")
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(f"too large to decode safely ({err}); downscale it first") from None
        except (OSError, SyntaxError) as err:
            raise ValueError(f"unreadable or truncated image ({err}); re-export or remove it") from None
    return ImageOps.exif_transpose(image)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Pillow clips 16/32-bit grayscale to 255 on convert(); scale it down instead."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    return image


def decode_background(file: InputFile, resolution: int, notes: list[str]) -> np.ndarray:
    """Center-crop to square and resize to R x R RGB."""
    image = _to_8bit(open_image(file)).convert("RGB")
    side = min(image.size)
    if side < resolution:
        notes.append(f"{file.name}: {image.width}x{image.height} is smaller than --resolution {resolution}; upscaled")
    image = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def decode_foreground(file: InputFile, mask_threshold: int, notes: list[str]) -> np.ndarray:
    """RGBA cut-out cropped to the bounding box of its non-zero alpha."""
    image = _to_8bit(open_image(file))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        raise ValueError(f"has no transparency (mode {image.mode}); save the cut-out as an RGBA PNG "
                         "with a transparent background")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        raise ValueError("has an alpha channel but no transparent pixel; cut the foreground out first")
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if rows.size == 0:
        raise ValueError("is fully transparent; there is no foreground to paste")
    opaque = int((alpha >= mask_threshold).sum())
    if opaque == 0:
        raise ValueError(f"has no pixel with alpha >= --mask-threshold {mask_threshold}; its masks would be empty")
    if opaque < MIN_OPAQUE_PIXELS:
        notes.append(f"{file.name}: only {opaque} pixels with alpha >= {mask_threshold}; "
                     "its masks will be tiny or empty at small scales")
    return rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()


def _decode_all(files, decode, role, problems):
    arrays = []
    for file in files:
        try:
            arrays.append(decode(file))
        except ValueError as err:
            problems.append(f"{file.name} ({role}): {err}")
    return arrays


def _note_duplicates(files: list[InputFile], role: str, notes: list[str]) -> None:
    first_name = {}
    for file in files:
        if file.sha256 in first_name:
            notes.append(f"{file.name}: same content as {first_name[file.sha256]} ({role}s); both are used")
        first_name.setdefault(file.sha256, file.name)


def load_inputs(content: ContentSettings, run: RunOptions) -> Inputs:
    """Read, decode and validate every input; raise UsageError listing all problems."""
    problems, notes = [], []
    if run.demo:
        bg_files, fg_files = ([InputFile(name, data) for name, data in files] for files in demo_files())
        if content.with_ground:  # scenes with exact depth (builder.rows.bg_depth reads their maps)
            bg_files = [InputFile(name, data) for name, data in demo_ground_files()[0]]
    else:
        bg_files = read_folder(run.bg_dir, "background", problems, notes)
        fg_files = read_folder(run.fg_dir, "foreground", problems, notes)
    backgrounds = _decode_all(bg_files, lambda f: decode_background(f, content.resolution, notes), "background",
                              problems)
    foregrounds = _decode_all(fg_files, lambda f: decode_foreground(f, content.mask_threshold, notes), "foreground",
                              problems)
    _note_duplicates(bg_files, "background", notes)
    _note_duplicates(fg_files, "foreground", notes)
    if problems:
        raise UsageError(problems, notes)
    return Inputs(backgrounds, foregrounds, bg_files, fg_files, notes)
