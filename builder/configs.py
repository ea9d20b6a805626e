"""The config registry: one object per config binds its schema (features, key column, image columns with their
statistics kinds and grids) to its row count, its row renderer and verify's row check. Adding a config is one
entry here; adding a column is its schema line plus the renderer and the check that produce and verify it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from builder import checks, render
from builder.plan import SampleSpace
from builder.schema import BACKGROUNDS, DEFAULT, FOREGROUNDS, ConfigSchema


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    schema: ConfigSchema
    count_rows: Callable[[SampleSpace], int]
    render_row: Callable  # (RenderContext, index, StatsBook) -> (row, depth input or None)
    check_row: Callable  # (checks.Reference, row, with_images) -> checks.RowResult

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def key_column(self) -> str:
        return self.schema.key_column


CONFIGS = (
    DatasetConfig(DEFAULT, len, render.render_sample, checks.check_sample_row),
    DatasetConfig(BACKGROUNDS, lambda space: space.n_bg, render.render_background, checks.check_background_row),
    DatasetConfig(FOREGROUNDS, lambda space: space.n_fg, render.render_foreground, checks.check_foreground_row),
)
CONFIG_BY_NAME = {config.name: config for config in CONFIGS}
