"""One progress bar for the whole job, on the main process: its own rows as they are written, plus the
rows of shards other processes have finished (read from their done markers)."""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from builder.contract.plan import ShardTask
from builder.store.output import OutputStore


class JobProgress:
    POLL_SECONDS = 1.0

    def __init__(self, store: OutputStore, tasks: list[ShardTask], enabled: bool):
        self.store, self.tasks, self.enabled = store, tasks, enabled
        self.in_flight = 0  # rows of this process's unfinished shard
        self.last_poll = 0.0
        self.bar = None
        self.resumed_rows = 0
        if enabled:
            done = self._done_rows()
            self.bar = tqdm(total=sum(t.rows for t in tasks), initial=done, unit="row", dynamic_ncols=True,
                            desc="generating", smoothing=0.05)
            self.resumed_rows = done

    def _done_rows(self) -> int:
        return sum(t.rows for t in self.tasks if self.store.has_marker(t.name))

    def refresh(self, force: bool = True) -> None:
        now = time.monotonic()
        if self.bar is None or (not force and now - self.last_poll < self.POLL_SECONDS):
            return
        self.last_poll = now
        target = self._done_rows() + self.in_flight
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def advance(self, rows: int) -> None:
        self.in_flight += rows
        self.refresh(force=False)

    def shard_done(self) -> None:
        self.in_flight = 0
        self.refresh()

    def close(self) -> None:
        self.refresh()
        if self.bar is not None:
            self.bar.close()
