"""The output folder: shard files that appear only when whole, done markers, manifest and lock."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from builder.errors import UsageError
from builder.plan import ShardName, ShardTask
from builder.settings import Manifest
from builder.stats import ImageStats

STATE_DIR = ".fgbg"  # hidden: datasets ignores it when resolving data files
MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "checksums.json"  # an export's files with their sha256 (builder/export.py writes it)
GENERATED_NAMES = ("data", STATE_DIR, "images", "README.md", "stats.json", MANIFEST_NAME)
TMP_SUFFIX = ".tmp"
RANKS_DIR = "ranks"  # under STATE_DIR: each rank's liveness files (builder/liveness.py)
HASH_CHUNK = 8 * 1024**2


def read_shard_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Record batches of one Arrow IPC stream shard, one at a time (memory stays flat)."""
    with pa.OSFile(str(path), "rb") as source:
        yield from pa.ipc.open_stream(source)


def read_shard_schema(path: Path) -> pa.Schema:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_stream(source).schema


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 8 MiB chunks (hashlib releases the GIL on them: threads hash in parallel).

    Writers hash their file this way right after fsync, from the page cache: measured on this project's CPUs
    that costs less (about 1.2 CPU-s per GB) than hashing the bytes on their way to the file through a Python
    sink wrapper (about 1.9 CPU-s per GB, the wrapper copies every buffer)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


class OutputStore:
    """A dataset folder: shards under data/, their done markers and the lock under .fgbg/, the manifest."""

    POLL_SECONDS = 1.0

    def __init__(self, root: Path):
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR
        self.done_dir = self.state_dir / "done"
        self.tmp_dir = self.state_dir / "tmp"
        self.ranks_dir = self.state_dir / RANKS_DIR
        self.manifest_path = self.root / MANIFEST_NAME
        self._lock_handle = None

    def shard_path(self, name: ShardName) -> Path:
        return self.root / name.relative_path()

    def marker_path(self, name: ShardName) -> Path:
        return self.done_dir / name.marker_name

    def is_done(self, task: ShardTask) -> bool:
        return self.marker_path(task.name).exists() and self.shard_path(task.name).exists()

    def read_marker(self, task: ShardTask) -> dict:
        return json.loads(self.marker_path(task.name).read_text())

    def read_manifest(self) -> Manifest:
        return Manifest.from_json(json.loads(self.manifest_path.read_text()))

    def wait_for_all(self, tasks: list[ShardTask], on_poll: Callable[[], None] = lambda: None) -> None:
        """Block until every shard, written by any process, has its done marker."""
        while not all(self.is_done(task) for task in tasks):
            on_poll()
            time.sleep(self.POLL_SECONDS)
        on_poll()

    def write_shard(self, task: ShardTask, schema: pa.Schema,
                    batches: Iterable[tuple[pa.RecordBatch, dict[str, ImageStats]]],
                    on_rows: Callable[[int], None] = lambda n: None) -> None:
        """Stream batches into a temp file, rename it into place, then write the done marker last; the marker
        holds the sha256 of the file as written, hashed after fsync (`verify --checksums` compares with it)."""
        final = self.shard_path(task.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{final.name}.{os.getpid()}{TMP_SUFFIX}"
        stats: dict[str, ImageStats] = {}
        rows = 0
        try:
            with pa.OSFile(str(tmp), "wb") as sink:
                with pa.ipc.new_stream(sink, schema) as writer:
                    for batch, batch_stats in batches:
                        writer.write_batch(batch)
                        for kind, part in batch_stats.items():
                            stats[kind] = stats[kind].merge(part) if kind in stats else part
                        rows += batch.num_rows
                        on_rows(batch.num_rows)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            sha256 = file_sha256(tmp)
            if rows != task.rows:
                raise RuntimeError(f"shard {final.name} got {rows} rows, expected {task.rows}")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        name = task.name
        atomic_write_json(self.marker_path(name), {
            "config_name": name.config_name, "split": name.split, "shard_index": name.index, "num_shards": name.count,
            "start": task.start, "stop": task.stop, "rows": rows, "file_bytes": final.stat().st_size,
            "sha256": sha256,
            "stats": {kind: s.to_json() for kind, s in stats.items()}})

    def prepare(self, manifest: Manifest, overwrite: bool) -> None:
        """Create the folder, take the lock, and refuse to mix runs made from different inputs or settings."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError([f"--output-dir {self.root} is a file; give a folder"])
        if self.root.is_dir():
            foreign = sorted(p.name for p in self.root.iterdir() if p.name not in GENERATED_NAMES)
            if foreign and not self.manifest_path.exists():
                raise UsageError([f"--output-dir {self.root} already holds other files ({', '.join(foreign[:5])}); "
                                  "give an empty or new folder"])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        if overwrite:
            self._remove_generated()
            self.state_dir.mkdir(parents=True, exist_ok=True)
        elif self.manifest_path.exists():
            try:
                differences = self.read_manifest().differences(manifest)
            except (UsageError, KeyError, TypeError, ValueError):
                differences = ["format"]
            if differences:
                raise UsageError([f"{self.root} holds a dataset made with different {', '.join(differences)}; "
                                  "rerun with the same inputs and settings to resume, or pass --overwrite to "
                                  "start over, or choose another --output-dir"])
        atomic_write_json(self.manifest_path, manifest.to_json())
        self._remove_stale_temp_files()
        shutil.rmtree(self.ranks_dir, ignore_errors=True)  # a previous run's heartbeats and failures

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a run that was killed (SIGKILL, power loss): under the lock, nobody else owns them.

        Without this every crash mid-shard would leave a partial shard in .fgbg/tmp for good, and a crash in
        the card step a hidden `.name.PID.tmp` beside README.md or in images/ (which an upload would publish).
        """
        for folder in (self.tmp_dir, self.root, self.root / "images", self.done_dir):
            if folder.is_dir():
                for path in folder.glob(f"*{TMP_SUFFIX}" if folder == self.tmp_dir else f".*{TMP_SUFFIX}"):
                    if path.is_file():
                        path.unlink(missing_ok=True)

    def _lock(self) -> None:
        handle = open(self.state_dir / "lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UsageError([f"another generation is writing into {self.root} right now; wait for it to finish "
                              "or choose another --output-dir"]) from None
        self._lock_handle = handle  # held until the process exits

    def _remove_generated(self) -> None:
        for name in GENERATED_NAMES:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path / "done" if name == STATE_DIR else path, ignore_errors=True)
                if name == STATE_DIR:
                    shutil.rmtree(path / "tmp", ignore_errors=True)
            elif path.exists():
                path.unlink()
