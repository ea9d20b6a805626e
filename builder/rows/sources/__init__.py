"""Where a run's cut-outs come from, one source per run: a folder of RGBA cut-outs (`--fg-dir`), photos with a
mask folder (`--fg-dir`, `--fg-mask-dir`), or a COCO instances file (`--fg-coco`, `--fg-images`).

Listing a source (`list_cutouts`: which cut-outs, in fg_id order, with their category, file and region; every
problem found at once) is separate from surveying the files (`survey_cutouts`: each file read once, hashed and
decoded in full so that every bad one is found before anything is written; only its size is kept) and from
decoding one cut-out (`decode_cutout`: a record -> its RGBA pixels cropped to its box), which rows do on first
use (builder.rows.pixels)."""

from __future__ import annotations

import dataclasses

import numpy as np

from builder.contract.settings import ContentSettings, RunOptions
from builder.rows.files import InputFile, read_input
from builder.rows.sources.coco import CocoFilters, counts_text, decode_image, decode_instance, list_coco
from builder.rows.sources.cutout import Cutout, Listing
from builder.rows.sources.folders import decode_photo_mask, decode_rgba, list_images, list_photo_masks

__all__ = ["Cutout", "Listing", "decode_cutout", "list_cutouts", "survey_cutouts"]


def list_cutouts(content: ContentSettings, run: RunOptions, problems: list[str], notes: list[str]) -> Listing:
    """The run's cut-outs as its source lists them; a COCO file whose filters leave too few for the held-out
    cut-outs is a problem giving the filters' counts."""
    if run.fg_coco is not None:
        listing = list_coco(run.fg_coco, run.fg_images, CocoFilters.of(run), problems)
        held, kept = content.validation_foregrounds, len(listing.cutouts)
        if 0 < kept <= held:
            problems.append(f"{run.fg_coco}: its filters leave {kept} cut-outs ({counts_text(listing.source['counts'])}"
                            f"), but --validation-foregrounds {held} needs at least {held + 1}; hold out fewer, or "
                            "loosen the filters (--fg-min-area, --fg-keep-truncated, --fg-categories)")
        return listing
    if run.fg_mask_dir is not None:
        return Listing(list_photo_masks(run.fg_dir, run.fg_mask_dir, problems, notes), {"kind": "masks"})
    return Listing(list_images(run.fg_dir, "foreground", "--fg-dir", problems, notes))


def where(cutout: Cutout) -> str:
    """How a problem names a cut-out: its file, and its mask file or annotation id."""
    if cutout.annotation_id is not None:
        return f"{cutout.file.name} (annotation {cutout.annotation_id})"
    if cutout.mask is not None:
        return f"{cutout.name} with mask {cutout.mask.name} (foreground)"
    return f"{cutout.name} (foreground)"


def decode_cutout(cutout: Cutout, mask_threshold: int, image: np.ndarray | None = None) -> np.ndarray:
    """One cut-out's RGBA pixels cropped to its box, its files read now (`image`: a COCO instance's image pixels,
    when already decoded). Surveyed inputs decode without error; their notes were given then."""
    if cutout.rle is not None:
        return decode_instance(cutout, decode_image(cutout.file.read()) if image is None else image)
    if cutout.mask is not None:
        return decode_photo_mask(cutout, cutout.file.read(), cutout.mask.read(), mask_threshold, [])
    return decode_rgba(cutout, cutout.file.read(), mask_threshold, [])


def _survey_image(cutout: Cutout, problems: list[str]) -> InputFile | None:
    """A COCO instance's image read, hashed and decoded in full: its hashed record, or None (a problem added)."""
    file, data = read_input(cutout.file, where(cutout), problems)
    if data is None:
        return None
    try:
        decode_image(data)
    except ValueError as err:
        problems.append(f"{where(cutout)}: {err}")
        return None
    return file


def _survey_one(cutout: Cutout, mask_threshold: int, problems: list[str], notes: list[str],
                images: dict[str, InputFile | None]) -> Cutout | None:
    """The cut-out with its files hashed and its size, or None (a problem added). A COCO image is surveyed once
    for all its instances (`images`: by file name, None when bad; its first instance names it)."""
    if cutout.rle is not None:
        if cutout.file.name not in images:
            images[cutout.file.name] = _survey_image(cutout, problems)
        file = images[cutout.file.name]
        return dataclasses.replace(cutout, file=file) if file else None
    file, data = read_input(cutout.file, where(cutout), problems)
    mask, mask_data = read_input(cutout.mask, where(cutout), problems) if cutout.mask else (None, None)
    if data is None or (cutout.mask is not None and mask_data is None):
        return None
    try:
        pixels = (decode_photo_mask(cutout, data, mask_data, mask_threshold, notes) if mask is not None
                  else decode_rgba(cutout, data, mask_threshold, notes))
    except ValueError as err:
        problems.append(f"{where(cutout)}: {err}")
        return None
    return dataclasses.replace(cutout, file=file, mask=mask, shape=pixels.shape[:2])


def survey_cutouts(cutouts: list[Cutout], mask_threshold: int, problems: list[str], notes: list[str]) -> list[Cutout]:
    """Every cut-out's files read once, hashed and decoded in full, each problem naming its file: the cut-outs
    with their hashes and sizes (no pixels are kept). A COCO image is read once for all its instances."""
    images: dict[str, InputFile | None] = {}
    surveyed = [_survey_one(cutout, mask_threshold, problems, notes, images) for cutout in cutouts]
    return [cutout for cutout in surveyed if cutout is not None]
