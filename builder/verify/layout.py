"""verify, part 1: the folder's layout. Every config's shards present, named by the one shard naming, numbered
without gaps, listed in the card's data_files; for generator output, each shard finished (its done marker agrees
with the file)."""

from __future__ import annotations

import dataclasses
import fnmatch

import yaml

from builder.contract.plan import ShardName, shard_tasks
from builder.contract.schema import CONFIG_NAMES
from builder.contract.settings import Manifest
from builder.store.formats import FORMATS
from builder.store.marker import DoneMarker
from builder.store.names import CARD_NAME, DONE_DIR, config_dir
from builder.store.output import OutputStore
from builder.store.reader import ShardFile
from builder.store.shards import ShardStore

Problems = list[tuple[str, str]]  # (where, what)


@dataclasses.dataclass
class Shard:
    config_name: str
    file: ShardFile
    name: ShardName | None  # None if the file name does not follow the shard naming
    marker: DoneMarker | None = None  # Arrow shards: the done marker

    @property
    def relative(self) -> str:
        return self.file.relative


@dataclasses.dataclass
class Layout:
    suffix: str  # the shards' format: the generator's ("arrow") or an export's ("parquet")
    shards: dict[str, list[Shard]]

    @property
    def description(self) -> str:
        return f"{self.suffix} shards (generator output)" if self.generated else f"{self.suffix} export"

    @property
    def generated(self) -> bool:
        """A generation's own folder: its shards have done markers (an export's have checksums.json)."""
        return self.suffix == ShardStore.format.suffix


def find_layout(store: OutputStore) -> tuple[Layout, Problems]:
    problems, found, suffixes = [], {}, set()
    for name in CONFIG_NAMES:
        shards = []
        for file_name in store.folder.listdir(config_dir(name)):
            relative, suffix = f"{config_dir(name)}/{file_name}", file_name.rsplit(".", 1)[-1]
            if "." not in file_name or suffix not in FORMATS:
                problems.append((relative, "unexpected file among the shards (a leftover temp file?)"))
                continue
            suffixes.add(suffix)
            shards.append(Shard(name, ShardFile(store.folder, relative), ShardName.parse(name, file_name)))
        if not shards:
            problems.append((config_dir(name), "no shard files: the config is missing"))
        found[name] = shards
    if len(suffixes) > 1:
        problems.append(("data", "mixes .arrow and .parquet shards"))
    only = suffixes.pop() if len(suffixes) == 1 else ShardStore.format.suffix
    return Layout(only, found), problems


def card_patterns(store: OutputStore) -> tuple[dict[str, list[str]] | None, Problems]:
    if not store.folder.is_file(CARD_NAME):
        return None, [(CARD_NAME, "missing: the card (and stats.json) are written last, so the generation "
                                  "did not finish; rerun the same command")]
    text = store.folder.read_text(CARD_NAME)
    try:
        header = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else None
        return {c["config_name"]: [f["path"] for f in c["data_files"]] for c in header["configs"]}, []
    except Exception as err:
        return None, [("README.md", f"no readable YAML header with configs/data_files ({err})")]


def numbering_problems(name: str, shards: list[Shard], layout: Layout, manifest: Manifest,
                       split_rows: dict[str, int]) -> Problems:
    """Per split: shards numbered without gaps and, for generator output, as many as the split's rows make."""
    problems = [(s.relative, "name does not follow <split>-XXXXX-of-NNNNN.<arrow|parquet>")
                for s in shards if s.name is None]
    named = [s.name for s in shards if s.name is not None]
    for split in sorted({n.split for n in named} - set(split_rows)):
        problems.append((f"data/{name}", f"shards of split {split!r}, which this dataset does not have "
                                         f"(its splits: {', '.join(split_rows)})"))
    for split, rows in split_rows.items():
        mine = [n for n in named if n.split == split]
        counts = {n.count for n in mine}
        if len(counts) > 1:
            problems.append((f"data/{name}", f"{split} shards disagree on the shard count: {sorted(counts)}"))
            continue
        if not counts:
            problems += [] if not named else [(f"data/{name}", f"no shards of split {split!r}")]
            continue
        count = counts.pop()
        for index in sorted(set(range(count)) - {n.index for n in mine}):
            problems.append((ShardName(name, split, index, count).relative_path(layout.suffix).rsplit(".", 1)[0],
                             "shard is missing"))
        shard_size = manifest.settings.shard_size
        expected = len(shard_tasks(name, rows, shard_size, split))
        if layout.generated and count != expected:
            problems.append((f"data/{name}", f"{count} {split} shards, but {rows} rows in shards of {shard_size} "
                                             f"make {expected}"))
    return problems


def marker_problems(store: OutputStore, layout: Layout) -> Problems:
    """Arrow shards: each finished by the store's one check (its done marker, which is attached to the shard, and
    the file's size agree), and no marker is left without its shard: every file among the done markers is read
    back as the shard it names (`ShardName.parse_marker`), and one naming no shard of the folder is reported."""
    problems, known = [], set()
    for shards in layout.shards.values():
        for shard in (s for s in shards if s.name is not None):
            known.add(shard.name)
            shard.marker, problem = store.shard_state(shard.name)
            if problem is not None:
                problems.append((shard.relative, problem))
    for file_name in store.marker_files():
        if ShardName.parse_marker(file_name) not in known:
            problems.append((f"{DONE_DIR}/{file_name}", "done marker without its shard file"))
    return problems


def layout_problems(store: OutputStore, layout: Layout, manifest: Manifest,
                    split_rows: dict[str, dict[str, int]]) -> Problems:
    """`split_rows`: config -> split -> rows, from the sample space and the split plan."""
    patterns, problems = card_patterns(store)
    for name, shards in layout.shards.items():
        for shard in shards:
            if patterns is not None and not any(fnmatch.fnmatch(shard.relative, p) for p in patterns.get(name, [])):
                problems.append((shard.relative, f"not listed in README.md data_files of config {name!r}"))
        problems += numbering_problems(name, shards, layout, manifest, split_rows[name])
    if layout.generated:
        problems += marker_problems(store, layout)
    return problems
