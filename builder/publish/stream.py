"""A dataset's rows as the exporters (COCO, YOLO) read them: from a generated folder, an export or a Hub repo id,
streamed one row at a time with the image cells undecoded, so memory stays flat however many rows there are."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import datasets
import numpy as np
from PIL import Image

from builder.contract.errors import UsageError

IMAGE_COLUMNS = ("fg_bg", "mask", "instance_mask")  # read undecoded: the composite is copied as stored
ROW_COLUMNS = (*IMAGE_COLUMNS, "sample_id", "fg_id", "objects")
CUTOUT_COLUMNS = ("fg_id", "source", "category", "category_id")  # the foregrounds rows without their images
UNCATEGORISED = "uncategorised"  # the class of the cut-outs without a category, where others have one


def split_names(source: str) -> list[str]:
    """The splits of the `default` config; exit 2 when `source` is not a dataset."""
    try:
        return datasets.get_dataset_split_names(source, "default")
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds for a missing or foreign dataset
        raise UsageError([f"{source}: not an fgbg-depth dataset folder or Hub repo id ({type(err).__name__}: "
                          f"{err}); give the --output-dir of generate.py, an export, or a repo id"]) from None


def config_rows(source: str, config_name: str, split: str, columns: Sequence[str]) -> Iterator[dict]:
    """The split's rows of one config, streamed, with those of `columns` the config has; images undecoded."""
    rows = datasets.load_dataset(source, config_name, split=split, streaming=True)
    rows = rows.select_columns([c for c in columns if c in rows.features])
    for column in IMAGE_COLUMNS:
        if column in rows.features:
            rows = rows.cast_column(column, datasets.Image(decode=False))
    return iter(rows)


def image_name(sample_id: int) -> str:
    """The composite's file name in an export."""
    return f"{sample_id:08d}.jpg"


def pixels(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def row_instances(row: dict) -> tuple[list[dict], np.ndarray]:
    """The row's objects and its instance map (k on object k's visible pixels, 0 elsewhere): `objects` and
    `instance_mask` with several objects (`--objects`), else the row's one cut-out and its `mask`."""
    objects = row.get("objects") or [{"fg_id": row["fg_id"]}]
    if "instance_mask" in row:
        return objects, pixels(row["instance_mask"])
    return objects, (pixels(row["mask"]) > 0).astype(np.uint8)
