"""How shards are stored: Arrow IPC streams (a generation's) and Parquet (an export's). Each format reads from an
open, seekable source (a memory map, or a remote file): the schema, record batches (chosen columns only), the row
count where the file states it, and units, the blocks a reader can fetch alone (a record batch, a row group)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

Columns = Sequence[str] | None  # None: every column


@dataclass(frozen=True)
class Unit:
    """One independently readable block of rows: a record batch (`offset` = its message's byte offset in an
    Arrow stream) or a Parquet row group (`offset` = the row group's index)."""

    file: str
    offset: int
    rows: int


class ArrowStream:
    """The generator's shards: one Arrow IPC stream per file, written batch by batch."""

    suffix = "arrow"

    @staticmethod
    def writer(sink: pa.NativeFile, schema: pa.Schema) -> pa.ipc.RecordBatchStreamWriter:
        return pa.ipc.new_stream(sink, schema)

    @staticmethod
    def schema(source) -> pa.Schema:
        return pa.ipc.open_stream(source).schema

    @staticmethod
    def batches(source, columns: Columns = None, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
        """The stream's own batches (`batch_rows` is Parquet's): memory stays at one batch."""
        for batch in pa.ipc.open_stream(source):
            yield batch if columns is None else batch.select(list(columns))

    @staticmethod
    def num_rows(source) -> int | None:
        """Not stated in the file (the done marker states it)."""
        return None

    @staticmethod
    def units(source, file: str) -> list[Unit]:
        """(byte offset, rows) of each record batch message, from the message headers (zero-copy on a map)."""
        reader = pa.ipc.MessageReader.open_stream(source)
        schema = pa.ipc.read_schema(reader.read_next_message())
        found = []
        while True:
            offset = source.tell()
            try:
                message = reader.read_next_message()
            except StopIteration:
                return found
            if message.type == "record batch":
                found.append(Unit(file, offset, pa.ipc.read_record_batch(message, schema).num_rows))

    @staticmethod
    def read_unit(source, unit: Unit, columns: Columns) -> pa.Table:
        source.seek(0)  # the schema message heads the stream, wherever `source` was left
        schema = pa.ipc.open_stream(source).schema
        source.seek(unit.offset)
        batch = pa.ipc.read_record_batch(pa.ipc.read_message(source), schema)
        table = pa.Table.from_batches([batch])
        return table if columns is None else table.select(list(columns))


class ParquetFiles:
    """An export's shards: Parquet files of row groups, with the HF features in the schema metadata."""

    suffix = "parquet"

    @staticmethod
    def schema(source) -> pa.Schema:
        return pq.read_schema(source)

    @staticmethod
    def batches(source, columns: Columns = None, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(source).iter_batches(batch_size=batch_rows or 64,
                                                       columns=None if columns is None else list(columns))

    @staticmethod
    def num_rows(source) -> int | None:
        return pq.ParquetFile(source).metadata.num_rows

    @staticmethod
    def units(source, file: str) -> list[Unit]:
        meta = pq.ParquetFile(source).metadata
        return [Unit(file, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]

    @staticmethod
    def read_unit(source, unit: Unit, columns: Columns) -> pa.Table:
        return pq.ParquetFile(source).read_row_group(unit.offset, columns=None if columns is None else list(columns))


FORMATS = {f.suffix: f for f in (ArrowStream, ParquetFiles)}  # by file suffix; the first is the generator's


def format_of(relative: str):
    """The format of a shard file by its suffix (KeyError for any other file)."""
    return FORMATS[relative.rsplit(".", 1)[-1]]
