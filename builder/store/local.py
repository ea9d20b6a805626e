"""The one storage a dataset folder has today: a local (or shared: NFS, Lustre) filesystem folder.

Every file operation of the store goes through `LocalFolder`, on paths relative to the folder (posix, "" for the
folder itself). An object store (s3://, gs://, hf://) is one more class with these methods; docs/design.md
("The store") says what each must guarantee there."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from builder.store.names import json_bytes, temp_name

HASH_CHUNK = 8 * 1024**2


class LockBusy(Exception):
    """Another process holds the lock."""


class LocalFolder:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.locks = LocalLocks(self)

    def path(self, relative: str = "") -> Path:
        return self.root / relative if relative else self.root

    def sub(self, relative: str) -> LocalFolder:
        """A folder inside this one, of the same storage."""
        return LocalFolder(self.path(relative))

    @property
    def location(self) -> str:
        """Where the folder is, as every process (and the user) names it: here its absolute path."""
        return str(self.root.absolute())

    def holds(self, other: str | os.PathLike, directly: bool = False) -> bool:
        """Whether `other` is this folder or inside it (`directly`: one of the folders right inside it)."""
        root, other = self.root.resolve(), Path(other).resolve()
        return other.parent == root if directly else other == root or root in other.parents

    # -- reading ---------------------------------------------------------------------------------------------

    def exists(self, relative: str = "") -> bool:
        return self.path(relative).exists()

    def is_file(self, relative: str) -> bool:
        return self.path(relative).is_file()

    def is_dir(self, relative: str = "") -> bool:
        return self.path(relative).is_dir()

    def size(self, relative: str) -> int:
        return self.path(relative).stat().st_size

    def stamp(self, relative: str) -> int | None:
        """The file's modification time in ns (None when it is missing): what a heartbeat changes."""
        try:
            return self.path(relative).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read_bytes(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def read_text(self, relative: str) -> str:
        return self.path(relative).read_text()

    def listdir(self, relative: str = "") -> list[str]:
        """The names directly under a folder, sorted; none when it is missing."""
        folder = self.path(relative)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def matching(self, pattern: str) -> list[str]:
        """The files matching a relative glob pattern, sorted."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern))

    def walk(self, relative: str = "") -> list[str]:
        """Every file under a folder (relative to the root), sorted."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.path(relative).rglob("*") if p.is_file())

    def open_input(self, relative: str) -> pa.NativeFile:
        """A seekable, zero-copy view of a file (a memory map); its buffers stay valid after it is closed."""
        return pa.memory_map(str(self.path(relative)), "r")

    def chunks(self, relative: str) -> Iterator[bytes]:
        with open(self.path(relative), "rb", buffering=0) as handle:
            while chunk := handle.read(HASH_CHUNK):
                yield chunk

    def sha256(self, relative: str) -> str:
        """Read in 8 MiB chunks (hashlib releases the GIL on them: threads hash in parallel).

        Writers hash their file this way right after fsync, from the page cache: measured on this project's CPUs
        that costs less (about 1.2 CPU-s per GB) than hashing the bytes on their way to the file through a Python
        sink wrapper (about 1.9 CPU-s per GB, the wrapper copies every buffer)."""
        digest = hashlib.sha256()
        for chunk in self.chunks(relative):
            digest.update(chunk)
        return digest.hexdigest()

    # -- writing ---------------------------------------------------------------------------------------------

    def mkdirs(self, relative: str = "") -> None:
        self.path(relative).mkdir(parents=True, exist_ok=True)

    def write_atomic(self, relative: str, data: bytes) -> None:
        """Write to a temp file beside the file, fsync, then rename: readers see the old file or the new one."""
        tmp = self.path(temp_name(relative, os.getpid()))
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(relative))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_json(self, relative: str, data) -> None:
        self.write_atomic(relative, json_bytes(data))

    def write_bytes(self, relative: str, data: bytes) -> None:
        """A plain write, for files that only become visible with their folder (an export's images)."""
        self.path(relative).write_bytes(data)

    def create(self, relative: str) -> pa.NativeFile:
        """A new file to stream into; the caller closes it (then `move`s it into place)."""
        return pa.OSFile(str(self.path(relative)), "wb")

    @contextlib.contextmanager
    def output(self, relative: str, final: str) -> Iterator[pa.NativeFile]:
        """Stream into `relative`, then fsync and rename it to `final`: `final` appears only whole. If the block
        raises, the temp file is removed and `final` is left as it was."""
        tmp = self.path(relative)
        try:
            with pa.OSFile(str(tmp), "wb") as sink:
                yield sink
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(final))
        finally:
            tmp.unlink(missing_ok=True)

    def move(self, relative: str, final: str) -> None:
        os.replace(self.path(relative), self.path(final))

    def touch(self, relative: str) -> None:
        """Create the file or move its modification time to now (in ns: coarse filesystems still see a change)."""
        path = self.path(relative)
        path.touch()
        now = time.time_ns()
        os.utime(path, ns=(now, now))

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def remove_tree(self, relative: str = "") -> None:
        shutil.rmtree(self.path(relative), ignore_errors=True)

    def staging(self) -> LocalFolder:
        """An empty sibling folder, `.NAME.partial`, to build this one in before `replace_folder`."""
        staged = LocalFolder(self.root.with_name(f".{self.root.name}.partial"))
        staged.remove_tree()
        return staged

    def replace_folder(self, target: LocalFolder) -> None:
        """Move this whole folder to `target`'s place, replacing what was there."""
        if target.exists():
            shutil.rmtree(target.root)
        self.root.replace(target.root)


class LocalLocks:
    """The folder's locks: flock on lock files in it, which the kernel releases when the holding process ends
    (killed too)."""

    def __init__(self, folder: LocalFolder):
        self.folder = folder
        self._held: list = []  # open lock files, held until the process exits

    def take(self, relative: str, shared: bool = False) -> None:
        """Take a lock (shared or alone) without waiting and hold it until the process exits; LockBusy if taken."""
        handle = open(self.folder.path(relative), "a")
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LockBusy(relative) from None
        self._held.append(handle)

    def is_taken(self, relative: str) -> bool:
        """Whether another process holds the lock alone (a shared probe, released at once)."""
        with open(self.folder.path(relative), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    @contextlib.contextmanager
    def held(self, relative: str) -> Iterator[bool]:
        """Whether this process got the lock (alone, without waiting), held for the block only."""
        with open(self.folder.path(relative), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    @contextlib.contextmanager
    def waiting(self, relative: str) -> Iterator[None]:
        """Held alone for the block, waiting for it first."""
        with open(self.folder.path(relative), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
