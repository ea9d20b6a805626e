"""Input image files: listed from a folder (sorted by name) as records, read when needed and never kept, hashed as
they are read, opened safely (decompression-bomb limit, truncation shown at once, EXIF orientation applied) and
brought to 8 bits."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from builder.contract.settings import InputRecord

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# Pillow's default bomb limit (~89 Mpx) warns; we refuse above it rather than decode gigabytes per file.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
EXIF_ORIENTATION, SWAPPING_ORIENTATIONS = 0x0112, (5, 6, 7, 8)


@dataclasses.dataclass(frozen=True, slots=True)
class InputFile:
    """An input file as a record: its name, where its bytes are (a path, or `memory` for files made in code such
    as the demo's), and once read (`hashed`), their sha256 and size. The bytes themselves are never kept."""

    name: str
    path: Path | None = None
    memory: bytes | None = dataclasses.field(default=None, repr=False)
    sha256: str | None = None
    size: int | None = None

    @classmethod
    def in_memory(cls, name: str, data: bytes) -> "InputFile":
        return cls(name, memory=data).hashed(data)

    def read(self) -> bytes:
        """The file's bytes, read now (OSError when it cannot be read)."""
        return self.memory if self.memory is not None else self.path.read_bytes()

    def open(self) -> BinaryIO:
        return io.BytesIO(self.memory) if self.memory is not None else open(self.path, "rb")

    def hashed(self, data: bytes) -> "InputFile":
        """This record with the sha256 and size of `data`, its bytes as just read."""
        return dataclasses.replace(self, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def record(self) -> InputRecord:
        """The manifest's record of it (it must have been hashed)."""
        if self.sha256 is None:
            raise RuntimeError(f"{self.name} was never read: its record has no hash")
        return InputRecord(self.name, self.sha256, self.size)


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def scan_folder(folder: Path, role: str, flag: str, problems: list[str], notes: list[str], prefix: str = ""
                ) -> tuple[list[InputFile], list[Path], bool]:
    """(image files directly in `folder`, sorted by name and each named `prefix` + its name, not read yet; its
    sub-folders; whether it could be listed in full). Other files are skipped with a note."""
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
            files.append(InputFile(prefix + entry.name, Path(entry.path)))
    return files, folders, complete


def no_images_problem(folder: Path, role: str) -> str:
    return f"{folder}: no {role} images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"


def list_folder(folder: Path, role: str, flag: str, problems: list[str], notes: list[str]) -> list[InputFile]:
    """Image files directly in a folder, sorted by name; other files are skipped with a note, sub-folders without
    one. No image at all is a problem."""
    files, _, complete = scan_folder(folder, role, flag, problems, notes)
    if not files and complete:
        problems.append(no_images_problem(folder, role))
    return files


def read_input(file: InputFile, where: str, problems: list[str]) -> tuple[InputFile, bytes | None]:
    """The file hashed, and its bytes; a file that cannot be read is a problem (`where` names it)."""
    try:
        data = file.read()
    except OSError as err:
        problems.append(f"{where}: cannot read ({err.strerror}); fix its permissions or remove it")
        return file, None
    return file.hashed(data), data


def open_image(data: bytes) -> Image.Image:
    """Decode fully (so truncation shows now), refuse decompression bombs, apply EXIF orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
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
    it cannot be read or is not an image."""
    try:
        stream = file.open()
    except OSError as err:
        raise ValueError(f"cannot read ({err.strerror}); fix its permissions or remove it") from None
    with stream:
        try:
            image = Image.open(stream)
            width, height = image.size
            swapped = image.getexif().get(EXIF_ORIENTATION) in SWAPPING_ORIENTATIONS
        except (OSError, SyntaxError) as err:
            raise ValueError(f"not a readable image ({err})") from None
    return (height, width) if swapped else (width, height)


def to_8bit(image: Image.Image) -> Image.Image:
    """Pillow clips 16/32-bit grayscale to 255 on convert(); scale it down instead."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    return image
