"""The sample space: index <-> (bg, fg, flip, k), each sample's placement, and shards: their names and ranges."""

from __future__ import annotations

import dataclasses
import re

import numpy as np


@dataclasses.dataclass(frozen=True)
class SampleSpace:
    """Background-major order: i = ((bg * n_fg + fg) * 2 + flip) * K + k."""

    n_bg: int
    n_fg: int
    placements: int

    def __len__(self) -> int:
        return self.n_bg * self.n_fg * 2 * self.placements

    def index(self, bg: int, fg: int, flip: int, k: int) -> int:
        return ((bg * self.n_fg + fg) * 2 + flip) * self.placements + k

    def decompose(self, i: int) -> tuple[int, int, int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"sample index {i} outside [0, {len(self)})")
        rest, k = divmod(i, self.placements)
        rest, flip = divmod(rest, 2)
        bg, fg = divmod(rest, self.n_fg)
        return bg, fg, flip, k


TRAIN, VALIDATION = "train", "validation"


def held_out(seed: int, count: int, held: int, stream: int) -> frozenset[int]:
    """`held` of `count` inputs chosen by a seeded permutation (not by file order): the validation inputs."""
    if held == 0:
        return frozenset()
    return frozenset(int(i) for i in np.random.default_rng([seed, 0x5A17, stream]).permutation(count)[:held])


@dataclasses.dataclass(frozen=True)
class SampleRows:
    """The sample ids of a split, in increasing order: every (bg, fg) pair of the split's backgrounds and
    foregrounds, each with its 2 * K flips and placements. Indexable without materialising the list."""

    space: SampleSpace
    backgrounds: tuple[int, ...]
    foregrounds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.backgrounds) * len(self.foregrounds) * 2 * self.space.placements

    def __getitem__(self, position: int) -> int:
        if not 0 <= position < len(self):
            raise IndexError(position)
        pair, offset = divmod(position, 2 * self.space.placements)
        bg, fg = divmod(pair, len(self.foregrounds))
        return self.space.index(self.backgrounds[bg], self.foregrounds[fg], 0, 0) + offset


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Which split every sample, background and cut-out belongs to. With held-out sets Bv and Fv:
    train is bg not in Bv and fg not in Fv; validation is (bg in Bv, or Bv empty) and (fg in Fv, or Fv empty);
    every other pair is dropped (never generated). Nothing held out: one train split of everything."""

    space: SampleSpace
    held_bg: frozenset[int] = frozenset()
    held_fg: frozenset[int] = frozenset()

    @classmethod
    def from_counts(cls, space: SampleSpace, seed: int, validation_backgrounds: int,
                    validation_foregrounds: int) -> "SplitPlan":
        return cls(space, held_out(seed, space.n_bg, validation_backgrounds, 0),
                   held_out(seed, space.n_fg, validation_foregrounds, 1))

    @property
    def splits(self) -> tuple[str, ...]:
        return (TRAIN, VALIDATION) if self.held_bg or self.held_fg else (TRAIN,)

    def backgrounds(self, split: str) -> tuple[int, ...]:
        return self._members(split, self.space.n_bg, self.held_bg)

    def foregrounds(self, split: str) -> tuple[int, ...]:
        return self._members(split, self.space.n_fg, self.held_fg)

    def _members(self, split: str, count: int, held: frozenset[int]) -> tuple[int, ...]:
        if split == TRAIN:
            return tuple(i for i in range(count) if i not in held)
        if split == VALIDATION and split in self.splits:
            return tuple(sorted(held)) if held else tuple(range(count))
        raise ValueError(f"no split {split!r} here; the splits are {self.splits}")

    def samples(self, split: str) -> SampleRows:
        return SampleRows(self.space, self.backgrounds(split), self.foregrounds(split))

    def split_of(self, bg: int, fg: int) -> str | None:
        """The split of a (background, cut-out) pair, or None where the pair is dropped: the rule, as stated."""
        if bg not in self.held_bg and fg not in self.held_fg:
            return TRAIN
        if (bg in self.held_bg or not self.held_bg) and (fg in self.held_fg or not self.held_fg):
            return VALIDATION
        return None

    @property
    def dropped(self) -> int:
        return len(self.space) - sum(len(self.samples(split)) for split in self.splits)


@dataclasses.dataclass(frozen=True)
class Placement:
    x: int
    y: int
    scale: float  # exactly representable in float32, so a stored row reproduces the same size
    width: int
    height: int


def placed_size(scale: float, fg_height: int, fg_width: int, resolution: int) -> tuple[int, int]:
    """(height, width) of a foreground whose longer side is scale * R."""
    longer = max(1, round(float(scale) * resolution))
    if fg_width >= fg_height:
        return max(1, round(fg_height * longer / fg_width)), longer
    return longer, max(1, round(fg_width * longer / fg_height))


def draw_placement(seed: int, index: int, fg_height: int, fg_width: int, resolution: int,
                   scale_min: float, scale_max: float, rng: np.random.Generator | None = None) -> Placement:
    """Sample `index`'s scale and position, drawn from a generator seeded by (seed, index) alone (or from `rng`:
    the further cut-outs of a scene, builder.rows.scene)."""
    rng = np.random.default_rng([seed, index]) if rng is None else rng
    scale = float(np.float32(rng.uniform(scale_min, scale_max)))
    height, width = placed_size(scale, fg_height, fg_width, resolution)
    x = int(rng.integers(0, resolution - width + 1))
    y = int(rng.integers(0, resolution - height + 1))
    return Placement(x, y, scale, width, height)


@dataclasses.dataclass(frozen=True)
class ShardName:
    """The one naming of a shard: `data/<config>/<split>-XXXXX-of-NNNNN.<suffix>`, and its done marker's name."""

    config_name: str
    split: str
    index: int
    count: int

    PATTERN = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<suffix>arrow|parquet)$")

    def file_name(self, suffix: str = "arrow") -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}.{suffix}"

    def relative_path(self, suffix: str = "arrow") -> str:
        return f"data/{self.config_name}/{self.file_name(suffix)}"

    @property
    def marker_name(self) -> str:
        return f"{self.config_name}-{self.split}-{self.index:05d}-of-{self.count:05d}.json"

    @classmethod
    def parse(cls, config_name: str, file_name: str) -> "ShardName | None":
        match = cls.PATTERN.match(file_name)
        if match is None:
            return None
        return cls(config_name, match["split"], int(match["index"]), int(match["count"]))

    @staticmethod
    def data_files(config_name: str, split: str, suffix: str) -> str:
        """The glob of one config's split, as the card's `data_files` lists it."""
        return f"data/{config_name}/{split}-*.{suffix}"


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """A shard to write: its name and the contiguous row range of its config (and split) it holds."""

    name: ShardName
    start: int
    stop: int

    @property
    def config_name(self) -> str:
        return self.name.config_name

    @property
    def rows(self) -> int:
        return self.stop - self.start


def shard_tasks(config_name: str, num_rows: int, shard_size: int, split: str = "train") -> list[ShardTask]:
    starts = range(0, num_rows, shard_size)
    return [ShardTask(ShardName(config_name, split, n, len(starts)), s, min(s + shard_size, num_rows))
            for n, s in enumerate(starts)]


def tasks_for_process(tasks: list[ShardTask], process_index: int, num_processes: int) -> list[ShardTask]:
    """Round-robin, so every process gets a similar share of each config."""
    return tasks[process_index::num_processes]
