"""Each rank's liveness files, `.fgbg/ranks/rank-N.{alive,finished,failed}`: what builder.run.liveness beats and
watches (alive is touched every few seconds, finished is left at the end, failed holds the error)."""

from __future__ import annotations

from builder.store.local import LocalFolder


class RankFiles:
    def __init__(self, folder: LocalFolder):
        """`folder`: where the files live (OUT/.fgbg/ranks for a generation)."""
        self.folder = folder

    @staticmethod
    def _name(rank: int, state: str) -> str:
        return f"rank-{rank}.{state}"

    def start(self) -> None:
        self.folder.mkdirs()

    def beat(self, rank: int) -> None:
        self.folder.touch(self._name(rank, "alive"))

    def last_beat(self, rank: int) -> int | None:
        """When the rank last beat (an opaque stamp that changes with every beat), None before its first."""
        return self.folder.stamp(self._name(rank, "alive"))

    def finish(self, rank: int) -> None:
        self.folder.touch(self._name(rank, "finished"))

    def fail(self, rank: int, error: str) -> None:
        self.folder.write_bytes(self._name(rank, "failed"), error.encode())

    def finished(self, rank: int) -> bool:
        return self.folder.exists(self._name(rank, "finished"))

    def failure(self, rank: int) -> str | None:
        """The error a rank left, None if it left none."""
        name = self._name(rank, "failed")
        return self.folder.read_text(name) if self.folder.exists(name) else None
