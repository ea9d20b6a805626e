"""A dead rank must not hang the job. torchrun stops every rank when one dies; launchers that start ranks
directly (SLURM srun, mpirun, RANK/WORLD_SIZE/MASTER_ADDR set by hand) do not, and the main process would wait
for the dead rank's shards forever.

So each rank touches OUT/.fgbg/ranks/rank-N.alive every HEARTBEAT_SECONDS from a background thread while it
writes its shards, then leaves rank-N.finished, or rank-N.failed with its error (builder.store.ranks.RankFiles).
While the main process waits for other ranks' shards it exits (FgbgError, exit 1) naming the missing shards as
soon as a rank has failed, or when a rank's heartbeat has not changed for the timeout (FGBG_RANK_TIMEOUT seconds,
default 60). Staleness is measured on the main process's own clock from when it last saw the file change, so
clocks of other nodes do not matter. The main process looks after each of its own shards and every second once
it waits: it exits at most timeout + 1 s after it starts waiting, or after the shard it is writing when the rank
dies.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from builder.contract.errors import FgbgError, UsageError
from builder.contract.plan import ShardTask
from builder.store.ranks import RankFiles

HEARTBEAT_SECONDS = 2.0
DEFAULT_TIMEOUT_SECONDS = 60.0
TIMEOUT_ENV = "FGBG_RANK_TIMEOUT"


def rank_timeout() -> float:
    """Seconds without a heartbeat after which a rank counts as dead."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_SECONDS))
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= HEARTBEAT_SECONDS:
        raise UsageError([(f"{TIMEOUT_ENV}={text!r}: give seconds, more than the heartbeat interval "
                           f"({HEARTBEAT_SECONDS:g} s)")])
    return value


class Heartbeat:
    """`with Heartbeat(files, rank):` around a rank's work: touches rank-N.alive until the block ends, then
    writes rank-N.finished, or rank-N.failed holding the error if the block raised."""

    def __init__(self, files: RankFiles, rank: int, interval: float = HEARTBEAT_SECONDS):
        self.files, self.rank, self.interval = files, rank, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{rank}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.files.beat(self.rank)

    def __enter__(self) -> Heartbeat:
        self.files.start()
        self.files.beat(self.rank)
        self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._stop.set()
        self._thread.join()
        if error is None:
            self.files.finish(self.rank)
        else:
            self.files.fail(self.rank, f"{type(error).__name__}: {error}\n")


class RankWatch:
    """The main process's view of the other ranks: `check()` raises when one of them is gone with shards
    missing. `ranks` maps each other rank to its shard tasks; `is_done` says whether a shard is finished."""

    def __init__(self, files: RankFiles, ranks: dict[int, list[ShardTask]], is_done: Callable[[ShardTask], bool],
                 timeout: float, clock: Callable[[], float] = time.monotonic):
        self.files, self.ranks, self.is_done, self.timeout, self.clock = files, ranks, is_done, timeout, clock
        started = clock()
        self.seen: dict[int, tuple[int | None, float]] = {rank: (None, started) for rank in ranks}

    def check(self) -> None:
        for rank, tasks in self.ranks.items():
            missing = [task for task in tasks if not self.is_done(task)]
            if not missing or self.files.finished(rank):
                continue
            failure = self.files.failure(rank)
            if failure is not None:
                raise FgbgError(lost_message(rank, f"failed ({failure.strip()})", missing))
            silent = self._silent_seconds(rank)
            if silent > self.timeout:
                raise FgbgError(lost_message(rank, f"sent no heartbeat for {silent:.0f} s (timeout {self.timeout:g} s "
                                                   f"from {TIMEOUT_ENV}): it died or hangs", missing))

    def _silent_seconds(self, rank: int) -> float:
        stamp = self.files.last_beat(rank)
        last, since = self.seen[rank]
        if stamp != last:
            self.seen[rank] = (stamp, self.clock())
            return 0.0
        return self.clock() - since


def lost_message(rank: int, what: str, missing: list[ShardTask]) -> str:
    names = [task.name.relative_path() for task in missing]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (f"rank {rank} {what}; its {len(names)} unfinished shard(s) will not be written: {shown}\n"
            "  Finished shards are kept: rerun the same command (all ranks) to write the missing ones.")
