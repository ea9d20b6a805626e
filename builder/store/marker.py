"""A finished shard's done marker: the record that its file is whole, with its rows, size, sha256 and statistics."""

from __future__ import annotations

import dataclasses
import json

from builder.contract.errors import FgbgError
from builder.contract.plan import ShardName
from builder.rows.stats import ImageStats

MARKER_FORMAT = 1  # the done marker's layout; format 1 files carry no "format" key (they predate the number)


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
    def from_bytes(cls, data: bytes, file_name: str) -> "DoneMarker":
        """MarkerError (naming `file_name`) for anything that is not a marker of this format."""
        try:
            return cls.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise unreadable(file_name, err) from err


def unreadable(file_name: str, err: Exception) -> MarkerError:
    return MarkerError(f"unreadable done marker {file_name} ({type(err).__name__}: {err}); delete it and rerun the "
                       "generation to rewrite its shard")
