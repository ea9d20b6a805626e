"""YOLO segmentation, the layout the Ultralytics tools read, from a dataset's `default` rows
(`scripts/export_yolo.py`): per split, `images/<split>/<sample_id>.jpg` (the stored composite, unchanged) and
`labels/<split>/<sample_id>.txt`, and one `data.yaml`. Rows are streamed; memory stays flat.

A label file has one line `class x1 y1 x2 y2 ...` per object with a visible pixel (`instance_mask == k` with
several objects, else `mask`): the outer contour of those pixels (builder.publish.polygon; an object in several
pieces is one polygon joined by zero-width bridges, as Ultralytics' COCO converter joins them), in pixel centres
divided by the image's width and height. A row without a visible object gets an empty file: Ultralytics reads it as
a background image, as it would a missing one, but here nothing is missing.

Classes: the COCO export's categories in its order (builder.publish.coco.categories: the source's categories by
their ids, cut-outs without one in a last "uncategorised" class; a dataset without categories has one class per
cut-out, named by its `source` file), class id = position, so both exports agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import yaml

from builder.publish.coco import categories
from builder.publish.polygon import outer_polygon
from builder.publish.stream import image_name, row_instances
from builder.store.storage import open_folder

DATA_YAML = "data.yaml"
TRAIN, VALIDATION = "train", "validation"


def classes(foregrounds: Iterable[dict]) -> tuple[list[str], dict[int, int]]:
    """(class names, class id = index; the class of each fg_id) from the `foregrounds` rows of every split."""
    cats, category_ids = categories(foregrounds)
    position = {cat["id"]: index for index, cat in enumerate(cats)}
    return [cat["name"] for cat in cats], {fg_id: position[ident] for fg_id, ident in category_ids.items()}


def label_lines(row: dict, class_of: dict[int, int]) -> list[str]:
    """The row's visible objects as YOLO segmentation lines."""
    objects, instances = row_instances(row)
    size = np.array(instances.shape[::-1])  # (width, height)
    lines = []
    for k, obj in enumerate(objects, start=1):
        layer = instances == k
        if layer.any():
            corners = outer_polygon(layer) / size
            lines.append(" ".join([str(class_of[obj["fg_id"]]), *(f"{v:.6f}" for v in corners.ravel())]))
    return lines


def write_split(rows: Iterator[dict], split: str, folder: Path, class_of: dict[int, int]) -> tuple[int, int]:
    """The split's images and label files; returns (rows, label lines). Image cells come undecoded."""
    out, images, labels = open_folder(folder), f"images/{split}", f"labels/{split}"
    out.mkdirs(images)
    out.mkdirs(labels)
    count = objects = 0
    for row in rows:
        name = image_name(row["sample_id"])
        out.write_bytes(f"{images}/{name}", row["fg_bg"]["bytes"])
        lines = label_lines(row, class_of)
        out.write_bytes(f"{labels}/{Path(name).stem}.txt", "".join(f"{line}\n" for line in lines).encode())
        count, objects = count + 1, objects + len(lines)
    return count, objects


def write_data_yaml(folder: Path, splits: list[str], names: list[str]) -> Path:
    """`data.yaml`: the folder's absolute path, the train and val image folders under it, and the class names.
    Ultralytics needs a val set: without a validation split it is the train split."""
    data = {"path": str(folder.resolve()), "train": f"images/{TRAIN}",
            "val": f"images/{VALIDATION if VALIDATION in splits else TRAIN}", "names": dict(enumerate(names))}
    open_folder(folder).write_bytes(DATA_YAML, yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode())
    return folder / DATA_YAML
