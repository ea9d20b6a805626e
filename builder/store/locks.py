"""Who may write into a dataset folder at once: the folder lock (alone: a torchrun/accelerate run or a finish;
shared: independent tasks), each independent task's own lock, and the short prepare lock around the manifest."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from builder.contract.errors import UsageError
from builder.store.local import LocalFolder, LockBusy
from builder.store.names import FOLDER_LOCK, PREPARE_LOCK, TASK_LOCK_NAME, TASKS_DIR, task_lock


class FolderLocks:
    def __init__(self, folder: LocalFolder):
        self.folder = folder

    def take_folder(self, shared: bool = False) -> None:
        """Taken alone by a torchrun/accelerate run and by a finish, shared by independent tasks. Held until the
        process exits."""
        try:
            self.folder.locks.take(FOLDER_LOCK, shared)
        except LockBusy:
            holder = "a torchrun/accelerate generation or a --finish is" if shared else "another generation is"
            raise UsageError([f"{holder} writing into {self.folder.root} right now; wait for it to finish or choose "
                              "another --output-dir"]) from None

    def take_task(self, slot: str) -> None:
        """An independent task's own lock: a second copy of one task is refused."""
        self.folder.mkdirs(TASKS_DIR)
        try:
            self.folder.locks.take(task_lock(slot))
        except LockBusy:
            raise UsageError([f"{slot} is already running on {self.folder.root} (another process holds "
                              f"{task_lock(slot)}): wait for it or stop it"]) from None

    def refuse_running_tasks_of_other_world_sizes(self, slot: str) -> None:
        """Tasks of one run split the shards by one world size: a task of another, running at the same time,
        would write shards of theirs and delete their temp files. One whose tasks have all ended (locks left
        behind, not held) does not count: rerunning with another world size is allowed."""
        mine = int(TASK_LOCK_NAME.fullmatch(slot)[2])
        for name in self.folder.listdir(TASKS_DIR):
            stem, suffix = name.rsplit(".", 1) if "." in name else (name, "")
            other = TASK_LOCK_NAME.fullmatch(stem)
            if suffix != "lock" or other is None or int(other[2]) == mine:
                continue
            if self.folder.locks.is_taken(f"{TASKS_DIR}/{name}"):
                raise UsageError([f"{stem} of a run with --world-size {other[2]} is running on {self.folder.root}, "
                                  f"and this task says --world-size {mine}: every task of a run takes the same "
                                  f"world size; give --world-size {other[2]}, or wait until those tasks have "
                                  "ended"])

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Held while a task reads or writes the manifest; tasks queue here for a moment."""
        with self.folder.locks.waiting(PREPARE_LOCK):
            yield
