"""A dataset's rows as the exporters (COCO, YOLO) read them: from a generated folder, an export or a Hub repo id
(through builder.store.reader), streamed one record batch at a time with the image cells undecoded, so memory
stays flat however many rows there are."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from builder.contract.errors import UsageError
from builder.store.reader import open_dataset

ROW_COLUMNS = ("fg_bg", "mask", "instance_mask", "sample_id", "fg_id", "objects")  # images stay as stored
CUTOUT_COLUMNS = ("fg_id", "source", "category", "category_id")  # the foregrounds rows without their images
UNCATEGORISED = "uncategorised"  # the class of the cut-outs without a category, where others have one


def split_names(source: str) -> list[str]:
    """The splits of the `default` config; exit 2 when `source` is not a dataset."""
    try:
        return open_dataset(source).splits("default")
    except Exception as err:  # noqa: BLE001 - a missing folder, a foreign one, or a repo that is not there
        raise UsageError([f"{source}: not an fgbg-depth dataset folder or Hub repo id ({type(err).__name__}: "
                          f"{err}); give the --output-dir of generate.py, an export, or a repo id"]) from None


def config_rows(source: str, config_name: str, split: str, columns: Sequence[str]) -> Iterator[dict]:
    """The split's rows of one config, streamed, with those of `columns` the config has; images undecoded."""
    files = open_dataset(source).split_files(config_name, split)
    stored = files.schema().names
    return files.rows([c for c in columns if c in stored])


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
