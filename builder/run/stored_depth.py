"""Ground placement by stored depth (the --bg-depth-dir maps', else the model's) reads each background's depth as
its `backgrounds` row stores it, so every process derives the same placements. Those rows are read back when a row
first needs them, never all held: a process keeps only the grounds its current rows use
(RenderContext.background_ground). No torch here: worker processes unpickle these."""

from __future__ import annotations

import dataclasses

import numpy as np

from builder.contract import given_depth as given
from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.settings import ContentSettings
from builder.rows.bg_depth import stored_disparity
from builder.store.reader import ShardFile


def depth_columns(given_depth: bool) -> list[str]:
    """The columns of a `backgrounds` row that hold the depth placement reads (`given_depth`: the run stores its
    --bg-depth-dir maps)."""
    return [given.COLUMN, given.MIN_COLUMN, given.MAX_COLUMN] if given_depth else ["depth", "depth_min", "depth_max"]


@dataclasses.dataclass(frozen=True)
class ShardDepth:
    """bg_id -> the disparity of its stored depth, read from its shard (file, row) when asked; and its stored focal
    length (a depth model that predicts its field of view)."""

    settings: ContentSettings
    given_depth: bool
    where: dict[int, tuple[ShardFile, int]]

    def __call__(self, bg_id: int) -> np.ndarray:
        shard, row = self.where[bg_id]
        cells = shard.row(row, depth_columns(self.given_depth))
        return stored_disparity(cells, self.settings, self.given_depth)

    def focal(self, bg_id: int) -> float:
        shard, row = self.where[bg_id]
        return float(shard.row(row, [FOCAL_COLUMN])[FOCAL_COLUMN])


@dataclasses.dataclass(frozen=True)
class RowDepth:
    """bg_id -> the disparity of its stored depth, from `backgrounds` rows rendered in this process and never
    written (fgbg_depth.FgBgDepth): their depth cells (PNG bytes) are held, decoded when asked; and the focal length
    they hold (a depth model that predicts its field of view)."""

    settings: ContentSettings
    given_depth: bool
    cells: dict[int, dict]

    def __call__(self, bg_id: int) -> np.ndarray:
        return stored_disparity(self.cells[bg_id], self.settings, self.given_depth)

    def focal(self, bg_id: int) -> float:
        return float(self.cells[bg_id][FOCAL_COLUMN])
