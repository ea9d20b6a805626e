"""Input image files: listed from a folder (sorted by name), held as bytes with their content hash, opened safely
(decompression-bomb limit, truncation shown at once, EXIF orientation applied) and brought to 8 bits."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# Pillow's default bomb limit (~89 Mpx) warns; we refuse above it rather than decode gigabytes per file.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
EXIF_ORIENTATION, SWAPPING_ORIENTATIONS = 0x0112, (5, 6, 7, 8)


@dataclasses.dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def scan_folder(folder: Path, role: str, flag: str, problems: list[str], notes: list[str], prefix: str = ""
                ) -> tuple[list[InputFile], list[Path], bool]:
    """(image files directly in `folder`, sorted by name and each named `prefix` + its name; its sub-folders;
    whether it could be read in full). Other files are skipped with a note."""
    if not folder.is_dir():
        problems.append(f"{folder}: {role} folder does not exist; check {flag}")
        return [], [], False
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        problems.append(f"{folder}: cannot list the {role} folder ({err.strerror}); fix its permissions")
        return [], [], False
    files, folders, complete = [], [], True
    for entry in entries:
        if entry.is_dir():
            folders.append(Path(entry.path))
        elif not entry.is_file():
            continue
        elif not is_image_name(entry.name):
            notes.append(f"{entry.path}: not an image file name, skipped")
        else:
            try:
                files.append(InputFile(prefix + entry.name, Path(entry.path).read_bytes()))
            except OSError as err:
                complete = False
                problems.append(f"{entry.path}: cannot read ({err.strerror}); fix its permissions or remove it")
    return files, folders, complete


def no_images_problem(folder: Path, role: str) -> str:
    return f"{folder}: no {role} images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"


def read_folder(folder: Path, role: str, flag: str, problems: list[str], notes: list[str]) -> list[InputFile]:
    """Image files directly in a folder, sorted by name; other files are skipped with a note, sub-folders without
    one. No image at all is a problem."""
    files, _, complete = scan_folder(folder, role, flag, problems, notes)
    if not files and complete:
        problems.append(no_images_problem(folder, role))
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


def oriented_size(file: InputFile) -> tuple[int, int]:
    """(width, height) of an image as decoded (EXIF orientation applied), from its header alone; ValueError when
    it is not an image."""
    try:
        image = Image.open(io.BytesIO(file.data))
    except (OSError, SyntaxError) as err:
        raise ValueError(f"not a readable image ({err})") from None
    width, height = image.size
    return (height, width) if image.getexif().get(EXIF_ORIENTATION) in SWAPPING_ORIENTATIONS else (width, height)


def to_8bit(image: Image.Image) -> Image.Image:
    """Pillow clips 16/32-bit grayscale to 255 on convert(); scale it down instead."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    return image
