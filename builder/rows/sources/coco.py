"""Cut-outs from a COCO instances file (`--fg-coco FILE --fg-images DIR`): every annotation with `iscrowd` 0 that
the filters keep is one cut-out, the image cropped to its mask's box, alpha 255 inside the mask and 0 outside.
Masks (polygons, compressed or uncompressed RLE) are decoded by pycocotools, the reference decoder.

Listing reads the JSON and the kept instances' images (for their hashes), and checks everything it can without
decoding pixels; problems name the file and the annotation ids, all of them at once. Filters, in this order, each
counted: `iscrowd` 1; a category not in `--fg-categories`; fewer mask pixels than `--fg-min-area` (an empty mask
always); a mask touching the image border (truncated objects), unless `--fg-keep-truncated`. Cut-outs are
ordered by annotation id. Image pixels are read as everywhere else in the tool (EXIF orientation applied), so
an entry's width and height, and each RLE's size, must be those of the image as displayed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
from pycocotools import mask as coco_mask

from builder.contract.settings import RunOptions
from builder.rows.files import InputFile, open_image, oriented_size, to_8bit
from builder.rows.sources.cutout import Cutout, Listing

COCO_KEYS = ("images", "annotations", "categories")
FILTERED = ("crowd", "other_categories", "small", "truncated")  # the filters' counts, in the order they apply
MAX_IDS_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class CocoFilters:
    min_area: int
    categories: tuple[str, ...] | None
    keep_truncated: bool

    @classmethod
    def of(cls, run: RunOptions) -> "CocoFilters":
        return cls(run.fg_min_area, run.fg_category_names, run.fg_keep_truncated)

    def to_json(self) -> dict:
        return {"min_area": self.min_area, "categories": list(self.categories) if self.categories else None,
                "keep_truncated": self.keep_truncated}


class AnnotationProblems:
    """Problems of a COCO file's annotations: one line per problem, naming every annotation that has it."""

    def __init__(self, path: Path):
        self.path, self.ids_by_problem = path, {}

    def add(self, annotation_id, problem: str) -> None:
        self.ids_by_problem.setdefault(problem, []).append(annotation_id)

    def lines(self) -> list[str]:
        lines = []
        for problem, ids in self.ids_by_problem.items():
            shown = ", ".join(map(str, ids[:MAX_IDS_SHOWN]))
            more = f" and {len(ids) - MAX_IDS_SHOWN:,} more" if len(ids) > MAX_IDS_SHOWN else ""
            lines.append(f"{self.path} annotation{'s' if len(ids) > 1 else ''} {shown}{more}: {problem}")
        return lines


@dataclasses.dataclass(frozen=True)
class Instance:
    """An annotation the filters keep, before its image file is read."""

    annotation_id: int
    image: dict
    category_id: int
    rle: dict
    box: tuple[int, int, int, int]


def compressed_runs(counts: str) -> list[int] | None:
    """The run lengths of a compressed RLE string, as pycocotools reads them (rleFrString); None when malformed
    (pycocotools would read past its end)."""
    runs, p = [], 0
    while p < len(counts):
        value, k, more = 0, 0, True
        while more:
            if p >= len(counts) or not 0 <= (c := ord(counts[p]) - 48) < 64:
                return None
            value |= (c & 0x1F) << (5 * k)
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    return runs if all(r >= 0 for r in runs) else None


def _polygons_rle(polygons: list, height: int, width: int) -> tuple[dict | None, str | None]:
    if not polygons:
        return None, "segmentation is an empty list of polygons"
    for k, polygon in enumerate(polygons, start=1):
        if not isinstance(polygon, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in polygon):
            return None, f"polygon {k} is not a list of numbers"
        if len(polygon) < 6 or len(polygon) % 2:
            return None, (f"polygon {k} has {len(polygon) // 2} point(s); a polygon needs at least 3"
                          if len(polygon) < 6 else f"polygon {k} has an odd number of coordinates")
    return coco_mask.merge(coco_mask.frPyObjects(polygons, height, width)), None


def segmentation_rle(segmentation, height: int, width: int) -> tuple[dict | None, str | None]:
    """(the mask as a compressed RLE, None) or (None, what is wrong with the segmentation)."""
    if isinstance(segmentation, list):
        return _polygons_rle(segmentation, height, width)
    if not isinstance(segmentation, dict):
        return None, "has no segmentation (polygons or an RLE): a cut-out needs a mask"
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if size != [height, width]:
        return None, f"RLE size {size} differs from its image's [height, width] [{height}, {width}]"
    if isinstance(counts, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        runs, rle = counts, {"size": size, "counts": counts}
    elif isinstance(counts, str):
        runs, rle = compressed_runs(counts), {"size": size, "counts": counts.encode()}
        if runs is None:
            return None, "RLE counts are not a well-formed compressed string"
    else:
        return None, "RLE counts are neither a list of run lengths nor a compressed string"
    if sum(runs) != height * width:
        return None, f"RLE counts cover {sum(runs)} pixels, not its image's {height} x {width} = {height * width}"
    return (coco_mask.frPyObjects(rle, height, width) if isinstance(counts, list) else rle), None


def _load(path: Path, problems: list[str]) -> tuple[InputFile | None, dict | None]:
    """The file and its JSON, if it is a COCO instances file at all."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        problems.append(f"{path}: cannot read ({err.strerror}); check --fg-coco")
        return None, None
    file = InputFile(path.name, path).hashed(raw)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{path}: not valid JSON ({err}); give a COCO instances file")
        return None, None
    missing = [key for key in COCO_KEYS if not isinstance(data, dict) or not isinstance(data.get(key), list)]
    if missing:
        problems.append(f"{path}: no {' / '.join(repr(k) for k in missing)} list; a COCO instances file has "
                        "images, annotations and categories lists")
        return None, None
    return file, data


def _by_id(entries: list, what: str, path: Path, problems: list[str]) -> dict[int, dict]:
    """A list of COCO entries by their integer id; an entry without one, or an id given twice, is a problem."""
    found = {}
    for n, entry in enumerate(entries):
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool):
            problems.append(f"{path}: {what} entry {n} has no integer id")
        elif ident in found:
            problems.append(f"{path}: {what} id {ident} appears more than once")
        else:
            found[ident] = entry
    return found


def _image_size(image: dict) -> tuple[int, int] | None:
    """(height, width) of an images entry, None when it lacks them."""
    height, width = image.get("height"), image.get("width")
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width))
    return (height, width) if ok else None


def _instance(annotation: dict, categories: dict[int, str], images: dict[int, dict], filters: CocoFilters,
              bad: AnnotationProblems) -> Instance | str | None:
    """The annotation as a kept instance, or the filter that leaves it out, or None (a problem, added to `bad`)."""
    ident = annotation["id"]
    if annotation.get("iscrowd", 0):
        return "crowd"
    if annotation.get("category_id") not in categories:
        bad.add(ident, f"category_id {annotation.get('category_id')!r} is not one of its categories")
        return None
    if filters.categories and categories[annotation["category_id"]] not in filters.categories:
        return "other_categories"
    image = images.get(annotation.get("image_id"))
    if image is None:
        bad.add(ident, f"image_id {annotation.get('image_id')!r} is not one of its images")
        return None
    if (size := _image_size(image)) is None:
        bad.add(ident, f"image {image['id']}'s entry has no positive integer width and height")
        return None
    rle, problem = segmentation_rle(annotation.get("segmentation"), *size)
    if problem:
        bad.add(ident, problem + (f" (image {image['id']}, {image.get('file_name')!r})" if "RLE size" in problem
                                  else ""))
        return None
    if int(coco_mask.area(rle)) < max(1, filters.min_area):
        return "small"
    x, y, w, h = (int(v) for v in coco_mask.toBbox(rle))
    if not filters.keep_truncated and (x == 0 or y == 0 or x + w == size[1] or y + h == size[0]):
        return "truncated"
    return Instance(ident, image, annotation["category_id"], rle, (x, y, x + w, y + h))


class ImageFiles:
    """The COCO file's images under `--fg-images`, each looked at once (its header: the survey reads it whole). A
    `file_name` is a path relative to the folder: an absolute one, or one with `..`, is a bad input."""

    def __init__(self, folder: Path):
        self.folder, self.read = folder, {}

    def get(self, image: dict) -> InputFile | str:
        """The image's file (its size checked against the entry's), or what is wrong with it."""
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            return f"image {image['id']} has no file_name"
        if name not in self.read:
            self.read[name] = self._read(name, image)
        return self.read[name]

    def _read(self, name: str, image: dict) -> InputFile | str:
        if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or ".." in PurePosixPath(
                name).parts:
            return f"image {image['id']} file_name {name!r} reaches outside --fg-images; give a path relative to it"
        path = self.folder / name
        if not path.is_file():
            return f"image {image['id']} {name!r} is missing from --fg-images {self.folder}"
        file = InputFile(name, path)
        try:
            width, height = oriented_size(file)
        except ValueError as err:
            return f"{path}: {err}"
        if (height, width) != _image_size(image):
            return (f"{path} is {width}x{height} (EXIF orientation applied), but its images entry says "
                    f"{image['width']}x{image['height']}")
        return file


def counts_text(counts: dict) -> str:
    """The filters' counts in words, for problems and the card."""
    left = [f"{counts['crowd']:,} crowd", f"{counts['other_categories']:,} of other categories",
            f"{counts['small']:,} below the minimum area", f"{counts['truncated']:,} touching the border"]
    return f"{counts['annotations']:,} annotations, left out {', '.join(left)}; {counts['kept']:,} kept"


def list_coco(path: Path, images_dir: Path, filters: CocoFilters, problems: list[str]) -> Listing:
    """Every instance the filters keep, by annotation id, and the manifest's `source` (the file's hash, the
    filters and their counts)."""
    coco_file, data = _load(path, problems)
    if data is None:
        return Listing([])
    categories = {ident: entry.get("name") for ident, entry in
                  _by_id(data["categories"], "categories", path, problems).items()}
    problems += [f"{path}: category {ident} has no name" for ident, name in categories.items()
                 if not isinstance(name, str) or not name]
    if filters.categories and (unknown := [n for n in filters.categories if n not in categories.values()]):
        problems.append(f"--fg-categories {','.join(unknown)}: not a category of {path}; its categories: "
                        + ", ".join(sorted(map(str, categories.values()))))
    images = _by_id(data["images"], "images", path, problems)
    annotations = _by_id(data["annotations"], "annotations", path, problems)
    if not images_dir.is_dir():
        problems.append(f"{images_dir}: image folder does not exist; check --fg-images")
        return Listing([])
    bad, files, cutouts = AnnotationProblems(path), ImageFiles(images_dir), []
    counts = {"annotations": len(annotations), **dict.fromkeys(FILTERED, 0)}
    for ident in sorted(annotations):
        kept = _instance(annotations[ident], categories, images, filters, bad)
        if isinstance(kept, str):
            counts[kept] += 1
        elif kept is not None:
            file = files.get(kept.image)
            if isinstance(file, str):
                bad.add(ident, file)
                continue
            x0, y0, x1, y1 = kept.box
            cutouts.append(Cutout(f"{file.name}#{ident}", file, categories[kept.category_id], kept.category_id,
                                  ident, kept.box, kept.rle, shape=(y1 - y0, x1 - x0)))
    counts["kept"] = len(cutouts)
    problems += bad.lines()
    if not cutouts and not bad.ids_by_problem:
        problems.append(f"{path}: no cut-out is left ({counts_text(counts)}); lower --fg-min-area, add "
                        "--fg-keep-truncated, or choose other --fg-categories")
    source = {"kind": "coco", "file": coco_file.record().to_json(),
              "filters": filters.to_json(), "counts": counts}
    return Listing(cutouts, source)


def decode_image(data: bytes) -> np.ndarray:
    """A COCO image's pixels as RGB, whatever its mode."""
    return np.asarray(to_8bit(open_image(data)).convert("RGB"), dtype=np.uint8)


def decode_instance(cutout: Cutout, image: np.ndarray) -> np.ndarray:
    """The instance's RGBA cut-out from its image's pixels: cropped to its mask's box, alpha 255 on the mask."""
    if list(image.shape[:2]) != cutout.rle["size"]:
        raise ValueError(f"is {image.shape[1]}x{image.shape[0]} but its mask is {cutout.rle['size'][1]}x"
                         f"{cutout.rle['size'][0]}")
    x0, y0, x1, y1 = cutout.box
    alpha = coco_mask.decode(cutout.rle)[y0:y1, x0:x1] * np.uint8(255)
    return np.dstack([image[y0:y1, x0:x1], alpha])
