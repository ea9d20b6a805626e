"""Reading a dataset back: a generator's folder (Arrow shards), an export (Parquet) or, read-only, a Hub repo.

    dataset = open_dataset("out/")                      # or an export folder, or "NAMESPACE/NAME" on the Hub
    for row in dataset.rows("default", "train", ["sample_id", "instance_mask", "objects"]):
        ...                                             # image cells stay encoded: {"bytes": ..., "path": None}

`split_files(config, split)` gives the files themselves, read whole (`batches`, `rows`) or unit by unit (a record
batch or a row group: `units`, `read`), which is how the training loader deals work below the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from builder.contract.plan import ShardName
from builder.contract.repo_id import REPO_ID
from builder.store.formats import FORMATS, Columns, Unit, format_of
from builder.store.local import LocalFolder
from builder.store.names import STATS_NAME, config_dir
from builder.store.storage import open_folder


@dataclass(frozen=True)
class ShardFile:
    """One shard file of a folder, read through its format."""

    folder: LocalFolder
    relative: str

    @property
    def format(self):
        return format_of(self.relative)

    def schema(self) -> pa.Schema:
        with self.folder.open_input(self.relative) as source:
            return self.format.schema(source)

    def batches(self, columns: Columns = None, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
        with self.folder.open_input(self.relative) as source:
            yield from self.format.batches(source, columns, batch_rows)

    def num_rows(self) -> int | None:
        """As the file states it (Parquet's footer); None for an Arrow stream."""
        with self.folder.open_input(self.relative) as source:
            return self.format.num_rows(source)

    def row(self, position: int, columns: Columns = None) -> dict:
        """One row: only the unit holding it is read (an Arrow stream's batches before it are passed over by their
        message headers, a Parquet file's row groups by its footer)."""
        with self.folder.open_input(self.relative) as source:
            for unit in self.format.units(source, self.relative):
                if position < unit.rows:
                    return self.format.read_unit(source, unit, columns).slice(position, 1).to_pylist()[0]
                position -= unit.rows
        raise IndexError(f"{self.relative} has fewer rows than asked for")


@dataclass(frozen=True)
class SplitFiles:
    """The files of one config's split, in order, all of one format."""

    folder: LocalFolder
    paths: tuple[str, ...]

    @property
    def fmt(self) -> str:
        return format_of(self.paths[0]).suffix

    def files(self) -> list[ShardFile]:
        return [ShardFile(self.folder, path) for path in self.paths]

    def schema(self) -> pa.Schema:
        return self.files()[0].schema()

    def batches(self, columns: Columns = None) -> Iterator[pa.RecordBatch]:
        for file in self.files():
            yield from file.batches(columns)

    def rows(self, columns: Columns = None) -> Iterator[dict]:
        for batch in self.batches(columns):
            yield from batch.to_pylist()

    def units(self) -> list[Unit]:
        """Every unit of every file, in file order; reads only Arrow message headers or Parquet footers."""
        units = []
        for path in self.paths:
            with self.folder.open_input(path) as source:
                units += format_of(path).units(source, path)
        return units

    def read(self, unit: Unit, columns: Columns) -> pa.Table:
        with self.folder.open_input(unit.file) as source:
            return format_of(unit.file).read_unit(source, unit, columns)


class DatasetReader:
    """A finished dataset, for reading: each config's splits and their rows, and stats.json."""

    def __init__(self, folder: LocalFolder):
        self.folder = folder

    @property
    def name(self) -> str:
        return str(self.folder.root)

    def split_files(self, config: str, split: str) -> SplitFiles:
        """FileNotFoundError when the dataset has no such config and split."""
        for fmt in FORMATS:
            paths = self.folder.matching(ShardName.data_files(config, split, fmt))
            if paths:
                return SplitFiles(self.folder, tuple(paths))
        raise FileNotFoundError(f"no {self.folder.path(ShardName.data_files(config, split, 'arrow'))} (nor "
                                f".parquet): give a finished fgbg-depth dataset folder with a {split!r} split")

    def splits(self, config: str) -> list[str]:
        """The config's splits, train first (FileNotFoundError when it has none)."""
        found = {parsed.split for name in self.folder.listdir(config_dir(config))
                 if (parsed := ShardName.parse(config, name)) is not None}
        if not found:
            raise FileNotFoundError(f"{self.name} has no shards of config {config!r}: not an fgbg-depth dataset")
        return sorted(found, key=lambda split: (split != "train", split))

    def batches(self, config: str, split: str, columns: Columns = None) -> Iterator[pa.RecordBatch]:
        return self.split_files(config, split).batches(columns)

    def rows(self, config: str, split: str, columns: Columns = None) -> Iterator[dict]:
        """Rows as dicts; image columns stay encoded ({"bytes", "path"}), `columns` picks a subset."""
        return self.split_files(config, split).rows(columns)

    def schema(self, config: str, split: str) -> pa.Schema:
        return self.split_files(config, split).schema()

    def stats(self) -> dict:
        try:
            return json.loads(self.folder.read_bytes(STATS_NAME))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.folder.path(STATS_NAME)} is missing: the dataset is unfinished; rerun "
                                    "scripts/generate.py") from None


def open_dataset(path_or_repo: str | os.PathLike, revision: str | None = None) -> DatasetReader:
    """A local folder (a generation's --output-dir or an export), else a Hub repo id (NAMESPACE/NAME)."""
    if REPO_ID.match(str(path_or_repo)) and not Path(path_or_repo).exists():
        from builder.store.hub import HubFolder

        return DatasetReader(HubFolder(str(path_or_repo), revision))
    folder = open_folder(path_or_repo)
    if not folder.is_dir():
        raise FileNotFoundError(f"{path_or_repo} is neither a dataset folder nor a Hub repo id (NAMESPACE/NAME); "
                                "give the --output-dir of scripts/generate.py, an --export-only folder, or a repo id")
    return DatasetReader(folder)
