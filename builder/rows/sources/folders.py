"""Cut-outs from folders: RGBA files (`--fg-dir`), or plain photos with a mask per photo (`--fg-dir` and
`--fg-mask-dir`). A file in a sub-folder of `--fg-dir` has that sub-folder's name as its category
(`fgs/cat/a.png` is "cat"); files directly in `--fg-dir` have none. Cut-outs are ordered by their path under the
folder, so a folder without sub-folders keeps its order by file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.rows.files import InputFile, no_images_problem, open_image, oriented_size, scan_folder, to_8bit
from builder.rows.sources.cutout import Cutout, crop_to_alpha, folder_categories


def list_images(folder: Path, role: str, flag: str, problems: list[str], notes: list[str]) -> list[Cutout]:
    """The images directly in `folder` (no category) and in its sub-folders (one level: each is a category),
    sorted by path under `folder`."""
    files, subfolders, complete = scan_folder(folder, role, flag, problems, notes)
    found = [Cutout(f.name, f) for f in files]
    for sub in subfolders:
        if sub.name.startswith("."):
            notes.append(f"{sub}: hidden folder, skipped")
            continue
        inner, nested, inner_complete = scan_folder(sub, role, flag, problems, notes, prefix=f"{sub.name}/")
        complete &= inner_complete
        notes += [f"{path}: a folder inside a category folder, skipped (categories are one level deep)"
                  for path in nested]
        found += [Cutout(f.name, f, category=sub.name) for f in inner]
    if not found and complete:
        problems.append(no_images_problem(folder, role))
    return folder_categories(sorted(found, key=lambda c: c.name))


def decode_rgba(cutout: Cutout, data: bytes, mask_threshold: int, notes: list[str]) -> np.ndarray:
    """An RGBA (or palette with a transparent index) cut-out from its file's bytes, cropped to the box of its
    non-zero alpha."""
    image = to_8bit(open_image(data))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        raise ValueError(f"has no transparency (mode {image.mode}); save the cut-out as an RGBA PNG "
                         "with a transparent background")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    if rgba[..., 3].min() == 255:
        raise ValueError("has an alpha channel but no transparent pixel; cut the foreground out first")
    return crop_to_alpha(rgba, mask_threshold, cutout.name, notes)


def _mask_index(mask_dir: Path, problems: list[str], notes: list[str]) -> dict[str, list[InputFile]]:
    """The mask folder's images by their path under it without suffix ("cat/a"), laid out as `--fg-dir` is."""
    masks = list_images(mask_dir, "mask", "--fg-mask-dir", problems, notes)
    index: dict[str, list[InputFile]] = {}
    for mask in masks:
        index.setdefault(str(Path(mask.name).with_suffix("")), []).append(mask.file)
    return index


def list_photo_masks(photo_dir: Path, mask_dir: Path, problems: list[str], notes: list[str]) -> list[Cutout]:
    """Each photo of `photo_dir` with its mask of `mask_dir` (same path under the folder, same file stem, any
    image type) of the photo's size. A photo without one mask, or with a mask of another size, is a problem
    naming both files; a mask of no photo is noted."""
    photos = list_images(photo_dir, "photo", "--fg-dir", problems, notes)
    masks = _mask_index(mask_dir, problems, notes)
    if not mask_dir.is_dir():
        return []
    cutouts = []
    for photo in photos:
        stem = str(Path(photo.name).with_suffix(""))
        found = masks.pop(stem, [])
        where = photo_dir / photo.name
        if len(found) != 1:
            problems.append(f"{where}: " + (
                f"no mask {mask_dir / stem}.png (any image type with the photo's file stem) in --fg-mask-dir; add "
                "one, or remove the photo" if not found else
                f"{len(found)} masks with its stem ({', '.join(str(mask_dir / m.name) for m in found)}); keep one"))
            continue
        try:
            photo_size, mask_size = oriented_size(photo.file), oriented_size(found[0])
        except ValueError as err:
            problems.append(f"{where} / mask {mask_dir / found[0].name}: {err}")
            continue
        if photo_size != mask_size:
            problems.append(f"{where} is {photo_size[0]}x{photo_size[1]} but its mask {mask_dir / found[0].name} is "
                            f"{mask_size[0]}x{mask_size[1]}: give a mask of the photo's size")
            continue
        cutouts.append(Cutout(photo.name, photo.file, photo.category, photo.category_id, mask=found[0]))
    notes += [f"{mask_dir / mask.name}: a mask of no photo in --fg-dir, skipped" for left in masks.values()
              for mask in left]
    return cutouts


def decode_photo_mask(cutout: Cutout, photo_data: bytes, mask_data: bytes, mask_threshold: int,
                      notes: list[str]) -> np.ndarray:
    """The photo (any mode, as RGB) with its mask as alpha (0..255; 16-bit masks scaled), cropped to the mask's
    box, from the two files' bytes."""
    photo = to_8bit(open_image(photo_data)).convert("RGB")
    matte = to_8bit(open_image(mask_data)).convert("L")
    if matte.size != photo.size:
        raise ValueError(f"is {photo.width}x{photo.height} but its mask {cutout.mask.name} is {matte.width}x"
                         f"{matte.height}: give a mask of the photo's size")
    rgba = np.dstack([np.asarray(photo, dtype=np.uint8), np.asarray(matte, dtype=np.uint8)])
    return crop_to_alpha(rgba, mask_threshold, cutout.name, notes)
