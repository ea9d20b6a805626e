"""A cut-out as its source lists it, before anything is decoded, and the checks every decoded cut-out passes."""

from __future__ import annotations

import dataclasses

import numpy as np

from builder.contract.settings import InputRecord
from builder.rows.files import InputFile

MIN_OPAQUE_PIXELS = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Cutout:
    """One cut-out: its name (the `foregrounds` config's `source`), the file its pixels come from, its category,
    where in that file it lies, and once surveyed its size. Listing makes these; surveying reads each file once
    (hash, full decode, size); decoding turns one into RGBA pixels cropped to its box, when a row needs it."""

    name: str  # a folder's file: its path under the folder; a COCO instance: "<file_name>#<annotation id>"
    file: InputFile  # the RGBA cut-out, the photo, or the COCO image (shared by that image's instances)
    category: str | None = None
    category_id: int | None = None
    annotation_id: int | None = None  # COCO
    box: tuple[int, int, int, int] | None = None  # COCO: (x0, y0, x1, y1) of its mask in the image, end exclusive
    rle: dict | None = None  # COCO: its mask as a compressed RLE (pycocotools' form)
    mask: InputFile | None = None  # photo + mask folders: the mask (its alpha)
    shape: tuple[int, int] | None = None  # (height, width) of its decoded pixels, cropped to its box

    def record(self) -> InputRecord:
        """The manifest's record of it: the hashes of its files, and its category."""
        file = self.file.record()
        return InputRecord(self.name, file.sha256, file.bytes, self.category, self.category_id, self.annotation_id,
                           self.mask.record() if self.mask else None)


@dataclasses.dataclass(frozen=True)
class Listing:
    """A source's cut-outs in fg_id order, and what the manifest says of the source itself (None: an RGBA
    folder, as before sources had a kind)."""

    cutouts: list[Cutout]
    source: dict | None = None


def folder_categories(cutouts: list[Cutout]) -> list[Cutout]:
    """Category ids for categories named by sub-folders: 1, 2, ... in name order."""
    ids = {name: n for n, name in enumerate(sorted({c.category for c in cutouts} - {None}), start=1)}
    return [dataclasses.replace(c, category_id=ids.get(c.category)) for c in cutouts]


def crop_to_alpha(rgba: np.ndarray, mask_threshold: int, name: str, notes: list[str]) -> np.ndarray:
    """The cut-out cropped to the box of its non-zero alpha; ValueError when no pixel would reach the mask."""
    alpha = rgba[..., 3]
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if rows.size == 0:
        raise ValueError("is fully transparent; there is no foreground to paste")
    opaque = int((alpha >= mask_threshold).sum())
    if opaque == 0:
        raise ValueError(f"has no pixel with alpha >= --mask-threshold {mask_threshold}; its masks would be empty")
    if opaque < MIN_OPAQUE_PIXELS:
        notes.append(f"{name}: only {opaque} pixels with alpha >= {mask_threshold}; "
                     "its masks will be tiny or empty at small scales")
    return rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()
