"""The config registry: one object per config binds its schema (features, key column, image columns with their
statistics kinds and grids) to its row count and its row renderer. Verify binds its own row checks to these
configs (builder.verify.runner), so generating loads no verify code. Adding a config is one entry here and one check
there; adding a column is its schema line plus the renderer and the check that produce and verify it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from builder.contract.plan import ShardTask, SplitPlan, shard_tasks
from builder.contract.schema import BACKGROUNDS, DEFAULT, FOREGROUNDS, ConfigSchema
from builder.rows import render


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    schema: ConfigSchema
    keys: Callable[[SplitPlan, str], Sequence[int]]  # the key of each row of a split, in row order
    key_count: Callable[[SplitPlan], int]  # keys of every split (and dropped ones) lie in [0, key_count)
    render_row: Callable  # (RenderContext, key, StatsBook) -> (row, depth input or None)

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def key_column(self) -> str:
        return self.schema.key_column

    def count_rows(self, plan: SplitPlan, split: str) -> int:
        return len(self.keys(plan, split))


CONFIGS = (
    DatasetConfig(DEFAULT, SplitPlan.samples, lambda plan: plan.sample_count, render.render_sample),
    DatasetConfig(BACKGROUNDS, SplitPlan.backgrounds, lambda plan: plan.space.n_bg, render.render_background),
    DatasetConfig(FOREGROUNDS, SplitPlan.foregrounds, lambda plan: plan.space.n_fg, render.render_foreground),
)
CONFIG_BY_NAME = {config.name: config for config in CONFIGS}


def dataset_tasks(plan: SplitPlan, shard_size: int) -> list[ShardTask]:
    """Every shard of every config and split, in the one order of the whole dataset; a shard holds a contiguous
    range of its split's rows."""
    return [task for config in CONFIGS for split in plan.splits
            for task in shard_tasks(config.name, config.count_rows(plan, split), shard_size, split)]
