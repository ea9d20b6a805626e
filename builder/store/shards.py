"""A generation's shards and their done markers: a shard file appears only whole (written to a temp file, made
durable, renamed into `data/`), then gets its done marker; `shard_state` is the one test of a finished shard."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from builder.contract.errors import FgbgError
from builder.contract.plan import ShardName, ShardTask
from builder.rows.stats import ImageStats
from builder.store.formats import ArrowStream, Columns
from builder.store.local import LocalFolder
from builder.store.marker import DoneMarker, MarkerError, unreadable
from builder.store.names import (CLAIMS_DIR, DONE_DIR, TMP_DIR, TMP_SUFFIX, claim_lock, json_bytes, marker_path,
                                 shard_temp_prefix)
from builder.store.reader import ShardFile

FORMAT = ArrowStream  # what a generation writes


def remove_temp_files_of(folder: LocalFolder, name: ShardName) -> None:
    """The shard's temp file and its done marker's, of any process."""
    for file in folder.listdir(TMP_DIR):
        if f"{TMP_DIR}/{file}".startswith(shard_temp_prefix(name)) and file.endswith(TMP_SUFFIX):
            folder.remove(f"{TMP_DIR}/{file}")
    for file in folder.listdir(DONE_DIR):
        if file.startswith(f".{name.marker_name}.") and file.endswith(TMP_SUFFIX):
            folder.remove(f"{DONE_DIR}/{file}")


class ShardStore:
    POLL_SECONDS = 1.0
    format = FORMAT

    def __init__(self, folder: LocalFolder):
        self.folder = folder
        self.root = folder.root

    # -- reading ---------------------------------------------------------------------------------------------

    def shard(self, name: ShardName) -> ShardFile:
        return ShardFile(self.folder, name.relative_path(FORMAT.suffix))

    def batches(self, name: ShardName, columns: Columns = None) -> Iterator[pa.RecordBatch]:
        """One shard's record batches, one at a time (memory stays flat); `columns` picks a subset."""
        return self.shard(name).batches(columns)

    def has_marker(self, name: ShardName) -> bool:
        return self.folder.exists(marker_path(name))

    def is_done(self, task: ShardTask) -> bool:
        """What resuming skips: both files there. `shard_state` is the full check that finish, export and verify
        make."""
        return self.has_marker(task.name) and self.folder.exists(task.name.relative_path(FORMAT.suffix))

    def marker(self, name: ShardName) -> DoneMarker:
        """MarkerError when it is missing or unreadable."""
        relative = marker_path(name)
        try:
            data = self.folder.read_bytes(relative)
        except OSError as err:
            raise unreadable(name.marker_name, err) from err
        return DoneMarker.from_bytes(data, name.marker_name)

    def marker_files(self) -> list[str]:
        """The file names in the done markers' folder, sorted (temp files of a marker being written left out)."""
        return [name for name in self.folder.listdir(DONE_DIR) if not name.startswith(".")]

    def marker_bytes(self, file_name: str) -> bytes:
        return self.folder.read_bytes(f"{DONE_DIR}/{file_name}")

    def done_markers(self) -> list[DoneMarker]:
        """Every readable done marker in the folder, whatever the manifest says (tests, resume checks)."""
        names = [ShardName.parse_marker(file) for file in self.marker_files()]
        return [self.marker(name) for name in names if name is not None]

    def shard_state(self, name: ShardName) -> tuple[DoneMarker | None, str | None]:
        """The one test of a finished shard: its done marker readable, its file there with the size the marker
        records. Returns the marker (None when missing or unreadable) and what is unfinished (None: nothing)."""
        if not self.folder.is_file(marker_path(name)):
            return None, f"no done marker {marker_path(name)}: the shard was never finished"
        try:
            marker = self.marker(name)
        except MarkerError as err:
            return None, str(err)
        shard = name.relative_path(FORMAT.suffix)
        if not self.folder.is_file(shard):
            return marker, "missing, though its done marker is there"
        size = self.folder.size(shard)
        if size != marker.file_bytes:
            return marker, f"is {size} bytes, its done marker says {marker.file_bytes}"
        return marker, None

    def finished(self, tasks: Iterable[ShardTask]) -> tuple[list[DoneMarker], list[str]]:
        """The done markers of the finished shards among `tasks`, in order, and one line per unfinished one."""
        markers, unfinished = [], []
        for task in tasks:
            marker, problem = self.shard_state(task.name)
            if problem is None and marker.rows != task.rows:
                problem = f"its done marker says {marker.rows} rows, the manifest's sample space gives {task.rows}"
            if problem is None:
                markers.append(marker)
            else:
                unfinished.append(f"{task.name.relative_path()}: {problem}")
        return markers, unfinished

    def finished_markers(self, tasks: list[ShardTask]) -> list[DoneMarker]:
        """Every shard's done marker, or an FgbgError (exit 1) naming the unfinished shards."""
        markers, unfinished = self.finished(tasks)
        if unfinished:
            shown = unfinished[:20] + ([f"... and {len(unfinished) - 20} more"] if len(unfinished) > 20 else [])
            raise FgbgError(f"{len(unfinished)} of {len(tasks)} shard(s) in {self.root} are unfinished:\n"
                            + "\n".join(f"  {line}" for line in shown)
                            + "\n  Finished shards are kept: rerun the same generation command(s) to write these "
                              "(independent tasks: the tasks that own them), then --finish again.")
        return markers

    def wait_for_all(self, tasks: list[ShardTask], on_poll: Callable[[], None] = lambda: None) -> None:
        """Block until every shard, written by any process, has its done marker."""
        while not all(self.is_done(task) for task in tasks):
            on_poll()
            time.sleep(self.POLL_SECONDS)
        on_poll()

    # -- writing ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, name: ShardName) -> Iterator[bool]:
        """Whether this process holds the shard's claim, a lock kept while it writes the shard (released when it
        ends, finished or dead), for shards that several processes may write (pipeline.write_prerequisites). The
        holder first removes the temp files a dead writer left."""
        self.folder.mkdirs(CLAIMS_DIR)
        with self.folder.locks.held(claim_lock(name)) as ours:
            if ours:
                remove_temp_files_of(self.folder, name)
            yield ours

    def write_shard(self, task: ShardTask, schema: pa.Schema,
                    batches: Iterable[tuple[pa.RecordBatch, dict[str, ImageStats]]],
                    on_rows: Callable[[int], None] = lambda n: None) -> None:
        """Stream batches into a temp file, rename it into place, then write the done marker last; the marker
        holds the sha256 of the file as written, hashed after fsync (`verify --checksums` compares with it)."""
        final = task.name.relative_path(FORMAT.suffix)
        for folder in (final.rsplit("/", 1)[0], TMP_DIR, DONE_DIR):
            self.folder.mkdirs(folder)
        stats: dict[str, ImageStats] = {}
        rows = 0
        with self.folder.output(f"{shard_temp_prefix(task.name)}{os.getpid()}{TMP_SUFFIX}", final) as sink:
            with FORMAT.writer(sink, schema) as writer:
                for batch, batch_stats in batches:
                    writer.write_batch(batch)
                    for kind, part in batch_stats.items():
                        stats[kind] = stats[kind].merge(part) if kind in stats else part
                    rows += batch.num_rows
                    on_rows(batch.num_rows)
            if rows != task.rows:
                raise RuntimeError(f"shard {task.name.file_name()} got {rows} rows, expected {task.rows}")
        marker = DoneMarker(task.name, task.start, task.stop, rows, self.folder.size(final),
                            self.folder.sha256(final), stats)
        self.folder.write_atomic(marker_path(task.name), json_bytes(marker.to_json()))
