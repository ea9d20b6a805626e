"""Where a run's cut-outs come from, one source per run: a folder of RGBA cut-outs (`--fg-dir`), photos with a
mask folder (`--fg-dir`, `--fg-mask-dir`), or a COCO instances file (`--fg-coco`, `--fg-images`).

Listing a source (`list_cutouts`: which cut-outs, in fg_id order, with their category, file and region; every
problem found at once) is separate from decoding one cut-out (`decode_cutout`: a record -> its RGBA pixels
cropped to its box), so inputs can later be decoded on first use instead of all up front."""

from __future__ import annotations

import numpy as np

from builder.contract.settings import ContentSettings, RunOptions
from builder.rows.sources.coco import CocoFilters, counts_text, decode_image, decode_instance, list_coco
from builder.rows.sources.cutout import Cutout, Listing
from builder.rows.sources.folders import decode_photo_mask, decode_rgba, list_images, list_photo_masks

__all__ = ["Cutout", "Listing", "decode_cutouts", "list_cutouts"]


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


def decode_cutout(cutout: Cutout, mask_threshold: int, notes: list[str],
                  image: np.ndarray | None = None) -> np.ndarray:
    """One cut-out's RGBA pixels cropped to its box (`image`: a COCO instance's image pixels, when already
    decoded); ValueError saying what is wrong."""
    if cutout.rle is not None:
        return decode_instance(cutout, decode_image(cutout.file) if image is None else image)
    if cutout.mask is not None:
        return decode_photo_mask(cutout, mask_threshold, notes)
    return decode_rgba(cutout, mask_threshold, notes)


def decode_cutouts(cutouts: list[Cutout], mask_threshold: int, problems: list[str],
                   notes: list[str]) -> list[np.ndarray]:
    """Every cut-out decoded, each problem naming its file; a COCO image is decoded once for its instances in a
    row (they are ordered by annotation id, which most tools give an image's instances together)."""
    arrays, last = [], (None, None)
    for cutout in cutouts:
        try:
            image = None
            if cutout.rle is not None:
                if last[0] is not cutout.file:
                    last = (cutout.file, decode_image(cutout.file))
                image = last[1]
            arrays.append(decode_cutout(cutout, mask_threshold, notes, image))
        except ValueError as err:
            problems.append(f"{where(cutout)}: {err}")
    return arrays
