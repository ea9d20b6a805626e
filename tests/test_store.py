"""builder.store.reader: a generated folder and its Parquet export read back through the one read API (chosen
columns of a config's split, row by row or unit by unit) give exactly the rows `datasets.load_dataset` gives."""

from __future__ import annotations

import json

import datasets
import pytest

from builder.publish.export import ExportOptions, export
from builder.store.reader import open_dataset

COLUMNS = ["sample_id", "mask", "fg_id"]


@pytest.fixture(scope="module")
def exported(no_depth_reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("store") / "export"
    export(no_depth_reference, folder, ExportOptions("user/x", "mit", max_group_rows=10), progress=False)
    return folder


def loaded(folder, config: str, columns: list[str]) -> list[dict]:
    rows = datasets.load_dataset(str(folder), config, split="train").select_columns(columns)
    for column in columns:
        if isinstance(rows.features[column], datasets.Image):
            rows = rows.cast_column(column, datasets.Image(decode=False))
    return [{k: ({"bytes": v["bytes"]} if isinstance(v, dict) else v) for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("which", ["arrow", "parquet"])
def test_rows_of_a_split_equal_load_dataset(no_depth_reference, exported, which):
    folder = no_depth_reference if which == "arrow" else exported
    dataset = open_dataset(folder)
    files = dataset.split_files("default", "train")
    assert files.fmt == which and dataset.splits("default") == ["train"]
    ours = list(dataset.rows("default", "train", COLUMNS))
    assert all(list(row) == COLUMNS for row in ours)
    assert [{**row, "mask": {"bytes": row["mask"]["bytes"]}} for row in ours] == loaded(folder, "default", COLUMNS)
    units = files.units()
    assert sum(unit.rows for unit in units) == len(ours) and len(units) > len(files.paths)
    by_unit = [row for unit in units for row in files.read(unit, ["sample_id"]).to_pylist()]
    assert by_unit == [{"sample_id": row["sample_id"]} for row in ours]
    assert dataset.stats() == json.loads((folder / "stats.json").read_text())


def test_a_missing_config_split_or_folder_is_named(no_depth_reference, tmp_path):
    dataset = open_dataset(no_depth_reference)
    with pytest.raises(FileNotFoundError, match="'validation' split"):
        dataset.split_files("default", "validation")
    with pytest.raises(FileNotFoundError, match="no shards of config 'nothing'"):
        dataset.splits("nothing")
    with pytest.raises(FileNotFoundError, match="neither a dataset folder nor a Hub repo id"):
        open_dataset(tmp_path / "missing")
