"""verify, part 2: reading shards one record batch at a time (Arrow IPC streams or Parquet), so memory does not
grow with the rows; row counts come from the done markers (Arrow) or the Parquet footer, not from a full read."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from builder.verify.layout import Shard


def shard_schema(shard: Shard) -> pa.Schema:
    return shard.file.schema()


def iter_batches(shard: Shard, batch_rows: int = 64) -> Iterator[pa.RecordBatch]:
    """Parquet in batches of `batch_rows`; an Arrow stream in its own batches."""
    return shard.file.batches(batch_rows=batch_rows)


def expected_rows(shard: Shard) -> int:
    """The shard's row count as its footer (Parquet) or done marker (Arrow) states it; counted only if neither."""
    stated = shard.file.num_rows()
    if stated is not None:
        return stated
    if shard.marker is not None:
        return shard.marker.rows
    return sum(batch.num_rows for batch in shard.file.batches())


def rows_with_images(shard: Shard, total: int, sample: int | None, seed: int) -> np.ndarray:
    """Which rows get their images decoded: all, or `sample` chosen by (seed, shard path) alone."""
    if sample is None or sample >= total:
        return np.ones(total, dtype=bool)
    rng = np.random.default_rng([seed, 0x5EED, zlib.crc32(shard.relative.encode())])
    chosen = np.zeros(total, dtype=bool)
    chosen[rng.choice(total, size=sample, replace=False)] = True
    return chosen


def iter_rows(shard: Shard, chosen: np.ndarray) -> Iterator[tuple[int, list[dict], np.ndarray]]:
    """(first row number, rows, images-wanted flags) per record batch. Rows beyond the expected count (a marker
    that under-counts) get their images checked too."""
    offset = 0
    for batch in iter_batches(shard):
        rows = batch.to_pylist()
        flags = chosen[offset:offset + len(rows)]
        if len(flags) < len(rows):
            flags = np.concatenate([flags, np.ones(len(rows) - len(flags), dtype=bool)])
        yield offset, rows, flags
        offset += len(rows)
