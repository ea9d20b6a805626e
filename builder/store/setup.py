"""Preparing a dataset folder for a run: created, locked, checked against the manifest (a rerun with other inputs
or settings is refused), cleared of what a killed run left behind."""

from __future__ import annotations

from builder.contract.errors import UsageError
from builder.contract.plan import ShardTask
from builder.contract.settings import Manifest
from builder.store.local import LocalFolder
from builder.store.locks import FolderLocks
from builder.store.manifest import read_manifest, write_manifest
from builder.store.names import (DONE_DIR, GENERATED_NAMES, IMAGES_DIR, MANIFEST_NAME, RANKS_DIR, STATE_DIR, TMP_DIR,
                                 TMP_SUFFIX, is_generated)
from builder.store.shards import remove_temp_files_of


class FolderSetup:
    def __init__(self, folder: LocalFolder):
        self.folder, self.root = folder, folder.root
        self.locks = FolderLocks(folder)

    def prepare(self, manifest: Manifest, overwrite: bool) -> None:
        """Create the folder, take the lock, and refuse to mix runs made from different inputs or settings."""
        self._check_folder()
        self.folder.mkdirs(STATE_DIR)
        self.locks.take_folder()
        if overwrite:
            self._remove_generated()
            self.folder.mkdirs(STATE_DIR)
        elif self.folder.exists(MANIFEST_NAME):
            self._refuse_other_manifest(manifest, "rerun with the same inputs and settings to resume, or pass "
                                                  "--overwrite to start over, or choose another --output-dir")
        write_manifest(self.folder, manifest)
        self.remove_stale_temp_files()
        self.folder.remove_tree(RANKS_DIR)  # a previous run's heartbeats and failures

    def prepare_task(self, manifest: Manifest, slot: str, tasks: list[ShardTask]) -> None:
        """An independent task's part of preparing, safe when many tasks start at once: the first writes the
        manifest, every other one checks that its own is the same (library versions aside, as on a resume) and is
        refused otherwise. The tasks share the folder lock (a torchrun/accelerate run or a finish takes it alone),
        each holds the lock of its own `slot` (a second copy of one task is refused), and the manifest is read and
        written under a short prepare lock. Only the temp files of `tasks` are cleaned up: the task's own shards
        that no other process writes (a claimed shard's are cleaned under its claim)."""
        self._check_folder()
        self.folder.mkdirs(STATE_DIR)
        self.locks.take_folder(shared=True)
        self.locks.take_task(slot)
        with self.locks.preparing():
            self.locks.refuse_running_tasks_of_other_world_sizes(slot)
            if self.folder.exists(MANIFEST_NAME):
                self._refuse_other_manifest(manifest, "start every task with the same inputs, settings and model; "
                                                      "to start over delete the folder (--overwrite would delete "
                                                      "the other tasks' shards), or choose another --output-dir")
            else:
                write_manifest(self.folder, manifest)
        self.remove_stale_temp_files(tasks)

    def prepare_finish(self) -> Manifest:
        """The folder lock, alone (no task or run may be writing while the card is made), and the manifest."""
        if not self.folder.is_file(MANIFEST_NAME):
            raise UsageError([f"{self.root} has no {MANIFEST_NAME}: no generation was started there; run the "
                              "generation (every task) first"])
        self.locks.take_folder()
        self.remove_stale_temp_files()
        return read_manifest(self.folder)

    def _check_folder(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise UsageError([f"--output-dir {self.root} is a file; give a folder"])
        foreign = [name for name in self.folder.listdir() if not is_generated(name)]
        if foreign and not self.folder.exists(MANIFEST_NAME):
            raise UsageError([f"--output-dir {self.root} already holds other files ({', '.join(foreign[:5])}); "
                              "give an empty or new folder"])

    def _refuse_other_manifest(self, manifest: Manifest, fix: str) -> None:
        try:
            differences = read_manifest(self.folder).differences(manifest)
        except (UsageError, KeyError, TypeError, ValueError):
            differences = ["format"]
        if differences:
            raise UsageError([f"{self.root} holds a dataset made with different {', '.join(differences)}; {fix}"])

    def remove_stale_temp_files(self, tasks: list[ShardTask] | None = None) -> None:
        """Temp files of a run that was killed (SIGKILL, power loss), which nobody else owns: every one under the
        folder lock held alone, only those of its own shards (shard and done-marker temps) under a task's lock.

        Without this every crash mid-shard would leave a partial shard in .fgbg/tmp for good, and a crash in
        the card step a hidden `.name.PID.tmp` beside README.md or in images/ (which an upload would publish).
        """
        if tasks is not None:
            for task in tasks:
                remove_temp_files_of(self.folder, task.name)
            return
        for folder in (TMP_DIR, "", IMAGES_DIR, DONE_DIR):
            for file in self.folder.listdir(folder):
                relative = f"{folder}/{file}" if folder else file
                hidden = folder == TMP_DIR or file.startswith(".")
                if hidden and file.endswith(TMP_SUFFIX) and self.folder.is_file(relative):
                    self.folder.remove(relative)

    def _remove_generated(self) -> None:
        for name in GENERATED_NAMES:
            if self.folder.is_dir(name):
                for part in ((DONE_DIR, TMP_DIR) if name == STATE_DIR else (name,)):
                    self.folder.remove_tree(part)
            elif self.folder.exists(name):
                self.folder.remove(name)
