"""COCO instance segmentation from a dataset's `default` rows (`scripts/export_coco.py`): one JSON per split with
an RLE mask per visible object, and the composites as image files. Streams: rows are read one at a time and the
JSON is assembled from two spooled parts, so memory stays flat however many rows there are.

A row with several objects (`--objects`) gives one annotation per entry k of `objects` with visible pixels
(`instance_mask == k`); a row with one cut-out gives one, its `mask`. Categories: the source's (a COCO file's ids
and names, or the `--fg-dir` sub-folders', as the `foregrounds` config's `category_id` and `category` hold them;
cut-outs without one share an "uncategorised" category after the others), else one per cut-out named by its
`source` file (id fg_id + 1: COCO keeps 0 for the background); image id = `sample_id`; annotation id =
sample_id * 256 + k.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from builder.contract.settings import MAX_OBJECTS
from builder.publish.stream import UNCATEGORISED, image_name, pixels, row_instances
from builder.store.storage import open_folder


def rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bool mask: run lengths in column-major order, starting with a run of 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def row_annotations(row: dict, category_ids: dict[int, int]) -> list[dict]:
    """The row's objects as COCO annotations (without a visible pixel: none); `category_ids`: fg_id -> its
    category id."""
    objects, instances = row_instances(row)
    annotations = []
    for k, obj in enumerate(objects, start=1):
        layer = instances == k
        area = int(layer.sum())
        if area == 0:
            continue
        rows, cols = np.flatnonzero(layer.any(axis=1)), np.flatnonzero(layer.any(axis=0))
        bbox = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
        annotations.append({"id": row["sample_id"] * (MAX_OBJECTS + 1) + k, "image_id": row["sample_id"],
                            "category_id": category_ids[obj["fg_id"]], "segmentation": rle(layer), "area": area,
                            "bbox": bbox, "iscrowd": 0})
    return annotations


def categories(foregrounds: Iterable[dict]) -> tuple[list[dict], dict[int, int]]:
    """(the COCO categories, each cut-out's category id by fg_id), from the `foregrounds` rows: the source's
    categories where the dataset has them, else one per cut-out named by its source file. A cut-out in several
    splits (held-out backgrounds only) counts once."""
    rows = sorted({r["fg_id"]: r for r in foregrounds}.values(), key=lambda r: r["fg_id"])
    if not rows or "category" not in rows[0]:
        return (sorted(({"id": r["fg_id"] + 1, "name": r["source"], "supercategory": "cutout"} for r in rows),
                       key=lambda c: c["id"]), {r["fg_id"]: r["fg_id"] + 1 for r in rows})
    named = {r["category_id"]: r["category"] for r in rows if r["category"] is not None}
    none_id = max(named, default=0) + 1
    ids = {r["fg_id"]: none_id if r["category"] is None else r["category_id"] for r in rows}
    cats = [{"id": ident, "name": name, "supercategory": "object"} for ident, name in sorted(named.items())]
    if none_id in ids.values():
        cats.append({"id": none_id, "name": UNCATEGORISED, "supercategory": "object"})
    return cats, ids


def write_split(rows: Iterator[dict], split: str, folder: Path, cats: list[dict], category_ids: dict[int, int]
                ) -> int:
    """`folder/annotations/instances_<split>.json` and `folder/<split>/<sample_id>.jpg`; returns the rows. Image
    cells come undecoded ({"bytes": ...}); `cats` and `category_ids` come from `categories`."""
    out = open_folder(folder)
    out.mkdirs(split)
    out.mkdirs("annotations")
    count = 0
    with tempfile.TemporaryFile("w+b") as images, tempfile.TemporaryFile("w+b") as annotations:
        for row in rows:
            name = f"{split}/{image_name(row['sample_id'])}"
            out.write_bytes(name, row["fg_bg"]["bytes"])  # the stored JPEG, unchanged
            height, width = pixels(row["mask"]).shape[:2]
            images.write((("," if count else "") + json.dumps(
                {"id": row["sample_id"], "file_name": name, "width": width, "height": height})).encode())
            for annotation in row_annotations(row, category_ids):
                annotations.write((("," if annotations.tell() else "") + json.dumps(annotation)).encode())
            count += 1
        target = f"annotations/instances_{split}.json"
        with out.output(f"annotations/instances_{split}.tmp", target) as sink:
            sink.write(b'{"info": {"description": "fgbg-depth composites"}, "images": [')
            images.seek(0)
            shutil.copyfileobj(images, sink)
            sink.write(b'], "annotations": [')
            annotations.seek(0)
            shutil.copyfileobj(annotations, sink)
            sink.write(f'], "categories": {json.dumps(cats)}}}'.encode())
    return count
