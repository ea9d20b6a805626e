"""The output folder: shard files that appear only when whole, their done markers, the manifest and the locks."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from builder.contract.errors import FgbgError, UsageError
from builder.contract.plan import ShardName, ShardTask
from builder.contract.settings import Manifest
from builder.rows.stats import ImageStats

STATE_DIR = ".fgbg"  # hidden: datasets ignores it when resolving data files
MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "checksums.json"  # an export's files with their sha256 (builder/publish/export.py writes it)
GENERATED_NAMES = ("data", STATE_DIR, "images", "README.md", "stats.json", MANIFEST_NAME)
TMP_SUFFIX = ".tmp"
RANKS_DIR = "ranks"  # under STATE_DIR: each rank's liveness files (builder/run/liveness.py)
TASKS_DIR = "tasks"  # under STATE_DIR: each independent task's lock, TASKS_DIR/<task_lock_name>.lock
CLAIMS_DIR = "claims"  # under STATE_DIR: the claim of a shard any process may write (OutputStore.claim)
TASK_LOCK_NAME = re.compile(r"task-(\d+)-of-(\d+)")
HASH_CHUNK = 8 * 1024**2
MARKER_FORMAT = 1  # the done marker's layout; format 1 files carry no "format" key (they predate the number)


def task_lock_name(rank: int, world_size: int) -> str:
    """An independent task's lock name (TASK_LOCK_NAME reads it back)."""
    return f"task-{rank}-of-{world_size}"


class MarkerError(FgbgError):
    """A done marker that cannot be read as this version's DoneMarker."""


def _count(data: dict, key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} {value!r} is not a count")
    return value


@dataclasses.dataclass(frozen=True)
class DoneMarker:
    """A finished shard's record, `.fgbg/done/<config>-<split>-XXXXX-of-NNNNN.json`: written by the store once
    the shard file is in place, and read through this class by everyone (statistics and card, export, verify).

    Format 1 writes no `format` key, so every marker written so far reads as format 1; a later layout writes
    `"format": N`, and a reader refuses a format it does not know instead of misreading it."""

    name: ShardName
    start: int
    stop: int
    rows: int
    file_bytes: int
    sha256: str | None  # None in markers written before checksums were recorded
    stats: dict[str, ImageStats]

    def to_json(self) -> dict:
        name = self.name
        return {"config_name": name.config_name, "split": name.split, "shard_index": name.index,
                "num_shards": name.count, "start": self.start, "stop": self.stop, "rows": self.rows,
                "file_bytes": self.file_bytes, **({"sha256": self.sha256} if self.sha256 is not None else {}),
                "stats": {kind: s.to_json() for kind, s in self.stats.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "DoneMarker":
        if data.get("format", MARKER_FORMAT) != MARKER_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not this version's ({MARKER_FORMAT})")
        sha256 = data.get("sha256")
        if sha256 is not None and not isinstance(sha256, str):
            raise ValueError(f"sha256 {sha256!r} is not a hex digest")
        name = ShardName(str(data["config_name"]), str(data["split"]), _count(data, "shard_index"),
                         _count(data, "num_shards"))
        return cls(name, _count(data, "start"), _count(data, "stop"), _count(data, "rows"),
                   _count(data, "file_bytes"), sha256,
                   {kind: ImageStats.from_json(part) for kind, part in data["stats"].items()})

    @classmethod
    def read(cls, path: Path) -> "DoneMarker":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise MarkerError(f"unreadable done marker {path.name} ({type(err).__name__}: {err}); delete it and "
                              "rerun the generation to rewrite its shard") from err


def _generated(name: str) -> bool:
    """One of the names a generation writes into its folder, or the temp file of one (a task writing the
    manifest while another one looks)."""
    return name in GENERATED_NAMES or (name.startswith(".") and name.endswith(TMP_SUFFIX)
                                       and name[1:].rsplit(".", 2)[0] in GENERATED_NAMES)


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
        self._lock_handles: list = []  # open lock files, held until the process exits

    def shard_path(self, name: ShardName) -> Path:
        return self.root / name.relative_path()

    def marker_path(self, name: ShardName) -> Path:
        return self.done_dir / name.marker_name

    def is_done(self, task: ShardTask) -> bool:
        """What resuming skips: both files there. `shard_state` is the full check that finish, export and verify
        make."""
        return self.marker_path(task.name).exists() and self.shard_path(task.name).exists()

    def shard_state(self, name: ShardName) -> tuple[DoneMarker | None, str | None]:
        """The one test of a finished shard: its done marker readable, its file there with the size the marker
        records. Returns the marker (None when missing or unreadable) and what is unfinished (None: nothing)."""
        path = self.marker_path(name)
        if not path.is_file():
            return None, f"no done marker {path.relative_to(self.root).as_posix()}: the shard was never finished"
        try:
            marker = DoneMarker.read(path)
        except MarkerError as err:
            return None, str(err)
        shard = self.shard_path(name)
        if not shard.is_file():
            return marker, "missing, though its done marker is there"
        size = shard.stat().st_size
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
        tmp = self._temp_path(task.name)
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
        marker = DoneMarker(task.name, task.start, task.stop, rows, final.stat().st_size, sha256, stats)
        atomic_write_json(self.marker_path(task.name), marker.to_json())

    def _temp_path(self, name: ShardName) -> Path:
        """Where a shard is written before its rename: one name per shard (config, split, index) and process."""
        return self.tmp_dir / f"{name.config_name}-{name.file_name()}.{os.getpid()}{TMP_SUFFIX}"

    @contextlib.contextmanager
    def claim(self, name: ShardName) -> Iterator[bool]:
        """Whether this process holds the shard's claim, a lock kept while it writes the shard (released when it
        ends, finished or dead), for shards that several processes may write (pipeline.write_prerequisites). The
        holder first removes the temp files a dead writer left."""
        folder = self.state_dir / CLAIMS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{name.config_name}-{name.file_name()}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            self._remove_temp_files_of(name)
            yield True

    def prepare(self, manifest: Manifest, overwrite: bool) -> None:
        """Create the folder, take the lock, and refuse to mix runs made from different inputs or settings."""
        self._check_folder()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        if overwrite:
            self._remove_generated()
            self.state_dir.mkdir(parents=True, exist_ok=True)
        elif self.manifest_path.exists():
            self._refuse_other_manifest(manifest, "rerun with the same inputs and settings to resume, or pass "
                                                  "--overwrite to start over, or choose another --output-dir")
        atomic_write_json(self.manifest_path, manifest.to_json())
        self._remove_stale_temp_files()
        shutil.rmtree(self.ranks_dir, ignore_errors=True)  # a previous run's heartbeats and failures

    def prepare_task(self, manifest: Manifest, slot: str, tasks: list[ShardTask]) -> None:
        """An independent task's part of preparing, safe when many tasks start at once: the first writes the
        manifest, every other one checks that its own is the same (library versions aside, as on a resume) and is
        refused otherwise. The tasks share the folder lock (a torchrun/accelerate run or a finish takes it alone),
        each holds the lock of its own `slot` (a second copy of one task is refused), and the manifest is read and
        written under a short prepare lock. Only the temp files of `tasks` are cleaned up: the task's own shards
        that no other process writes (a claimed shard's are cleaned under its claim)."""
        self._check_folder()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock(shared=True)
        self._lock_task(slot)
        with self._prepare_lock():
            self._refuse_running_tasks_of_other_world_sizes(slot)
            if self.manifest_path.exists():
                self._refuse_other_manifest(manifest, "start every task with the same inputs, settings and model; "
                                                      "to start over delete the folder (--overwrite would delete "
                                                      "the other tasks' shards), or choose another --output-dir")
            else:
                atomic_write_json(self.manifest_path, manifest.to_json())
        self._remove_stale_temp_files(tasks)

    def prepare_finish(self) -> Manifest:
        """The folder lock, alone (no task or run may be writing while the card is made), and the manifest."""
        if not self.manifest_path.is_file():
            raise UsageError([f"{self.root} has no {MANIFEST_NAME}: no generation was started there; run the "
                              "generation (every task) first"])
        self._lock()
        self._remove_stale_temp_files()
        return self.read_manifest()

    def _check_folder(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise UsageError([f"--output-dir {self.root} is a file; give a folder"])
        if self.root.is_dir():
            foreign = sorted(p.name for p in self.root.iterdir() if not _generated(p.name))
            if foreign and not self.manifest_path.exists():
                raise UsageError([f"--output-dir {self.root} already holds other files ({', '.join(foreign[:5])}); "
                                  "give an empty or new folder"])

    def _refuse_other_manifest(self, manifest: Manifest, fix: str) -> None:
        try:
            differences = self.read_manifest().differences(manifest)
        except (UsageError, KeyError, TypeError, ValueError):
            differences = ["format"]
        if differences:
            raise UsageError([f"{self.root} holds a dataset made with different {', '.join(differences)}; {fix}"])

    def _remove_stale_temp_files(self, tasks: list[ShardTask] | None = None) -> None:
        """Temp files of a run that was killed (SIGKILL, power loss), which nobody else owns: every one under the
        folder lock held alone, only those of its own shards (shard and done-marker temps) under a task's lock.

        Without this every crash mid-shard would leave a partial shard in .fgbg/tmp for good, and a crash in
        the card step a hidden `.name.PID.tmp` beside README.md or in images/ (which an upload would publish).
        """
        if tasks is not None:
            for task in tasks:
                self._remove_temp_files_of(task.name)
            return
        for folder in (self.tmp_dir, self.root, self.root / "images", self.done_dir):
            if folder.is_dir():
                for path in folder.glob(f"*{TMP_SUFFIX}" if folder == self.tmp_dir else f".*{TMP_SUFFIX}"):
                    if path.is_file():
                        path.unlink(missing_ok=True)

    def _remove_temp_files_of(self, name: ShardName) -> None:
        """The shard's temp file and its done marker's, of any process."""
        for path in [*self.tmp_dir.glob(f"{name.config_name}-{name.file_name()}.*{TMP_SUFFIX}"),
                     *self.done_dir.glob(f".{name.marker_name}.*{TMP_SUFFIX}")]:
            path.unlink(missing_ok=True)

    def _lock(self, shared: bool = False) -> None:
        """The folder lock: taken alone by a torchrun/accelerate run and by a finish, shared by independent tasks.
        Held until the process exits."""
        handle = open(self.state_dir / "lock", "a")
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = "a torchrun/accelerate generation or a --finish is" if shared else "another generation is"
            raise UsageError([f"{holder} writing into {self.root} right now; wait for it to finish or choose "
                              "another --output-dir"]) from None
        self._lock_handles.append(handle)

    def _lock_task(self, slot: str) -> None:
        folder = self.state_dir / TASKS_DIR
        folder.mkdir(exist_ok=True)
        handle = open(folder / f"{slot}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UsageError([f"{slot} is already running on {self.root} (another process holds "
                              f"{STATE_DIR}/{TASKS_DIR}/{slot}.lock): wait for it or stop it"]) from None
        self._lock_handles.append(handle)

    def _refuse_running_tasks_of_other_world_sizes(self, slot: str) -> None:
        """Tasks of one run split the shards by one world size: a task of another, running at the same time,
        would write shards of theirs and delete their temp files. One whose tasks have all ended (locks left
        behind, not held) does not count: rerunning with another world size is allowed."""
        mine = int(TASK_LOCK_NAME.fullmatch(slot)[2])
        for path in sorted((self.state_dir / TASKS_DIR).glob("*.lock")):
            other = TASK_LOCK_NAME.fullmatch(path.stem)
            if other is None or int(other[2]) == mine:
                continue
            with open(path, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UsageError([f"{path.stem} of a run with --world-size {other[2]} is running on {self.root}, "
                                      f"and this task says --world-size {mine}: every task of a run takes the same "
                                      f"world size; give --world-size {other[2]}, or wait until those tasks have "
                                      "ended"]) from None

    @contextlib.contextmanager
    def _prepare_lock(self) -> Iterator[None]:
        """Held while a task reads or writes the manifest; tasks queue here for a moment."""
        with open(self.state_dir / "prepare.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _remove_generated(self) -> None:
        for name in GENERATED_NAMES:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path / "done" if name == STATE_DIR else path, ignore_errors=True)
                if name == STATE_DIR:
                    shutil.rmtree(path / "tmp", ignore_errors=True)
            elif path.exists():
                path.unlink()
