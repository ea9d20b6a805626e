"""The sample space: index <-> (bg, fg, flip, k) of the full product, or rows drawn (`--rows`); each sample's
placement; and shards: their names and ranges."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DRAW_STREAM = 4  # default_rng([seed, i, 4]): the background, cut-out and flip of drawn row i (--rows)


@dataclasses.dataclass(frozen=True)
class SampleSpace:
    """Background-major order: i = ((bg * n_fg + fg) * 2 + flip) * K + k."""

    n_bg: int
    n_fg: int
    placements: int | None  # None when rows are drawn (--rows): there is no product to index

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


class SampleInputs(NamedTuple):
    """What a sample is made of: its background, its cut-out, and whether the cut-out is flipped (0 or 1)."""

    bg: int
    fg: int
    flip: int


@dataclasses.dataclass(frozen=True)
class DrawnRows:
    """`--rows N` (and `--validation-rows M`): sample ids 0..N-1 are the train rows, N..N+M-1 the validation rows.
    Row i draws its background, cut-out and flip, in that order, uniformly among its split's inputs from
    `default_rng([seed, i, DRAW_STREAM])`; its placement still comes from `default_rng([seed, i])`."""

    seed: int
    train: int
    validation: int = 0

    def __len__(self) -> int:
        return self.train + self.validation

    def ids(self, split: str) -> range:
        return range(self.train) if split == TRAIN else range(self.train, len(self))

    def split_of(self, sample_id: int) -> str:
        return TRAIN if sample_id < self.train else VALIDATION

    def draw(self, sample_id: int, backgrounds: Sequence[int], foregrounds: Sequence[int]) -> SampleInputs:
        rng = np.random.default_rng([self.seed, sample_id, DRAW_STREAM])
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        fg = foregrounds[int(rng.integers(len(foregrounds)))]
        return SampleInputs(bg, fg, int(rng.integers(2)))


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
    """Which split every sample, background and cut-out belongs to, and which inputs every sample uses. With
    held-out sets Bv and Fv: train is bg not in Bv and fg not in Fv; validation is (bg in Bv, or Bv empty) and (fg
    in Fv, or Fv empty). The full product keeps every pair of a split and drops the others (never generated);
    drawn rows (`drawn`) each draw one pair among their split's inputs. Nothing held out: one train split."""

    space: SampleSpace  # the inputs' counts; its placements are None when rows are drawn
    held_bg: frozenset[int] = frozenset()
    held_fg: frozenset[int] = frozenset()
    drawn: DrawnRows | None = None

    @classmethod
    def from_counts(cls, space: SampleSpace, seed: int, validation_backgrounds: int,
                    validation_foregrounds: int, drawn: DrawnRows | None = None) -> "SplitPlan":
        return cls(space, held_out(seed, space.n_bg, validation_backgrounds, 0),
                   held_out(seed, space.n_fg, validation_foregrounds, 1), drawn)

    @property
    def splits(self) -> tuple[str, ...]:
        return (TRAIN, VALIDATION) if self.held_bg or self.held_fg else (TRAIN,)

    def backgrounds(self, split: str) -> tuple[int, ...]:
        self._check_split(split)
        return self._split_inputs[split][0]

    def foregrounds(self, split: str) -> tuple[int, ...]:
        self._check_split(split)
        return self._split_inputs[split][1]

    @functools.cached_property
    def _split_inputs(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """Split -> (its backgrounds, its cut-outs), computed once."""
        return {split: (self._members(split, self.space.n_bg, self.held_bg),
                        self._members(split, self.space.n_fg, self.held_fg)) for split in self.splits}

    @staticmethod
    def _members(split: str, count: int, held: frozenset[int]) -> tuple[int, ...]:
        if split == TRAIN:
            return tuple(i for i in range(count) if i not in held)
        return tuple(sorted(held)) if held else tuple(range(count))

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"no split {split!r} here; the splits are {self.splits}")

    def samples(self, split: str) -> Sequence[int]:
        """The sample ids of a split, in increasing order."""
        if self.drawn is not None:
            self._check_split(split)
            return self.drawn.ids(split)
        return SampleRows(self.space, self.backgrounds(split), self.foregrounds(split))

    @property
    def sample_count(self) -> int:
        """Sample ids run over [0, sample_count): every split's, and (full product) the dropped pairs'."""
        return len(self.drawn) if self.drawn is not None else len(self.space)

    def inputs_of(self, sample_id: int) -> SampleInputs:
        """The one definition of a sample's inputs, for the renderer and verify alike: decomposed from its index in
        the full product, or drawn among its split's inputs (`DrawnRows`)."""
        if not 0 <= sample_id < self.sample_count:
            raise IndexError(f"sample index {sample_id} outside [0, {self.sample_count})")
        if self.drawn is None:
            return SampleInputs(*self.space.decompose(sample_id)[:3])
        return self.drawn.draw(sample_id, *self._split_inputs[self.drawn.split_of(sample_id)])

    def sample_split(self, sample_id: int) -> str | None:
        """The split of a sample: a drawn row's by its id, a product sample's by its pair (None: dropped)."""
        if self.drawn is not None:
            return self.drawn.split_of(sample_id)
        return self.split_of(*self.inputs_of(sample_id)[:2])

    def split_of(self, bg: int, fg: int) -> str | None:
        """The split of a (background, cut-out) pair, or None where the pair is dropped: the rule, as stated."""
        if bg not in self.held_bg and fg not in self.held_fg:
            return TRAIN
        if (bg in self.held_bg or not self.held_bg) and (fg in self.held_fg or not self.held_fg):
            return VALIDATION
        return None

    @property
    def dropped(self) -> int:
        """Samples of the full product that no split holds (none when rows are drawn)."""
        return self.sample_count - sum(len(self.samples(split)) for split in self.splits)


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
    MARKER_PATTERN = re.compile(r"^(?P<config>.+)-(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})"
                                r"\.json$")

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

    @classmethod
    def parse_marker(cls, marker_name: str) -> "ShardName | None":
        """The shard a done marker's file name (`marker_name`) belongs to; None for any other name."""
        match = cls.MARKER_PATTERN.match(marker_name)
        if match is None:
            return None
        return cls(match["config"], match["split"], int(match["index"]), int(match["count"]))

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
