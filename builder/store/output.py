"""A generation's dataset folder, the one object run/, publish/ and verify/ hold: its shards and done markers
(`ShardStore`), preparing it (`FolderSetup`: locks, manifest, temp files), the run token and rank files, and the
files the finish writes (grids, README.md, stats.json)."""

from __future__ import annotations

import json
import os

from builder.contract.plan import ShardTask
from builder.contract.settings import Manifest
from builder.store.local import LocalFolder
from builder.store.names import (CARD_NAME, HUB_DIR, HUB_RECORD, IMAGES_DIR, MANIFEST_NAME, RANKS_DIR, RUN_TOKEN,
                                 STATS_NAME, grid_path, is_temp)
from builder.store.ranks import RankFiles
from builder.store.manifest import read_manifest
from builder.store.setup import FolderSetup
from builder.store.shards import ShardStore
from builder.store.storage import open_folder


class OutputStore(ShardStore):
    """A dataset folder: shards under data/, their done markers and the locks under .fgbg/, the manifest, and
    the card, grids and stats.json the finish writes."""

    def __init__(self, root: str | os.PathLike):
        super().__init__(open_folder(root))
        self._setup = FolderSetup(self.folder)
        self.ranks = RankFiles(self.folder.sub(RANKS_DIR))

    # -- preparing (FolderSetup) -----------------------------------------------------------------------------

    def prepare(self, manifest: Manifest, overwrite: bool) -> None:
        """Create the folder, take the lock, and refuse to mix runs made from different inputs or settings."""
        self._setup.prepare(manifest, overwrite)

    def prepare_task(self, manifest: Manifest, slot: str, tasks: list[ShardTask]) -> None:
        """An independent task's part of preparing (FolderSetup.prepare_task)."""
        self._setup.prepare_task(manifest, slot, tasks)

    def prepare_finish(self) -> Manifest:
        """The folder lock, alone, and the manifest."""
        return self._setup.prepare_finish()

    # -- the manifest and the run token ----------------------------------------------------------------------

    def has_manifest(self) -> bool:
        return self.folder.is_file(MANIFEST_NAME)

    def read_manifest(self) -> Manifest:
        return read_manifest(self.folder)

    def manifest_bytes(self) -> bytes | None:
        return self.folder.read_bytes(MANIFEST_NAME) if self.folder.is_file(MANIFEST_NAME) else None

    def write_run_token(self, token: str) -> None:
        self.folder.write_atomic(RUN_TOKEN, token.encode())

    def run_token(self) -> str | None:
        return self.folder.read_text(RUN_TOKEN) if self.folder.is_file(RUN_TOKEN) else None

    # -- what the finish writes, and reads back ----------------------------------------------------------------

    def write_grid(self, kind: str, png: bytes) -> str:
        """images/<kind>.png; returns that relative path (the card links it)."""
        self.folder.mkdirs(IMAGES_DIR)
        self.folder.write_atomic(grid_path(kind), png)
        return grid_path(kind)

    def grid(self, kind: str) -> bytes | None:
        return self.folder.read_bytes(grid_path(kind)) if self.folder.is_file(grid_path(kind)) else None

    def write_card(self, text: str) -> None:
        self.folder.write_atomic(CARD_NAME, text.encode())

    def write_stats(self, stats: dict) -> None:
        self.folder.write_json(STATS_NAME, stats)

    def read_stats(self) -> dict:
        return json.loads(self.folder.read_bytes(STATS_NAME))

    def card_path(self) -> str:
        return str(self.folder.path(CARD_NAME))

    def missing(self, *names: str) -> list[str]:
        """Which of these top-level files the folder lacks."""
        return [name for name in names if not self.folder.is_file(name)]

    def temp_files(self) -> list[str]:
        """Temp files a killed run left anywhere in the folder (the next run removes them)."""
        return [relative for relative in self.folder.walk() if is_temp(relative)]

    # -- a push's staged export ------------------------------------------------------------------------------

    @property
    def hub_folder(self) -> LocalFolder:
        return self.folder.sub(HUB_DIR)

    def hub_record(self) -> dict | None:
        return json.loads(self.folder.read_bytes(HUB_RECORD)) if self.folder.is_file(HUB_RECORD) else None

    def write_hub_record(self, record: dict | None) -> None:
        """What the staged export was made from (None: forget it, before exporting again)."""
        if record is None:
            self.folder.remove(HUB_RECORD)
        else:
            self.folder.write_json(HUB_RECORD, record)
