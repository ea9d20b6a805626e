"""verify, part 1: the folder's layout. Every config's shards present, named by the one shard naming, numbered
without gaps, listed in the card's data_files; for generator output, each shard finished (its done marker agrees
with the file)."""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

import yaml

from builder.contract.plan import ShardName, shard_tasks
from builder.contract.schema import CONFIG_NAMES
from builder.contract.settings import Manifest
from builder.run.shards import DoneMarker, OutputStore

Problems = list[tuple[str, str]]  # (where, what)


@dataclasses.dataclass
class Shard:
    config_name: str
    path: Path
    relative: str
    name: ShardName | None  # None if the file name does not follow the shard naming
    marker: DoneMarker | None = None  # Arrow shards: the done marker


@dataclasses.dataclass
class Layout:
    suffix: str  # "arrow" (generator output) or "parquet" (an export)
    shards: dict[str, list[Shard]]

    @property
    def description(self) -> str:
        return "parquet export" if self.suffix == "parquet" else "arrow shards (generator output)"


def find_layout(root: Path) -> tuple[Layout, Problems]:
    problems, found, suffixes = [], {}, set()
    for name in CONFIG_NAMES:
        folder, shards = root / "data" / name, []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            relative = path.relative_to(root).as_posix()
            if path.suffix not in (".arrow", ".parquet"):
                problems.append((relative, "unexpected file among the shards (a leftover temp file?)"))
                continue
            suffixes.add(path.suffix)
            shards.append(Shard(name, path, relative, ShardName.parse(name, path.name)))
        if not shards:
            problems.append((f"data/{name}", "no shard files: the config is missing"))
        found[name] = shards
    if len(suffixes) > 1:
        problems.append(("data", "mixes .arrow and .parquet shards"))
    return Layout("parquet" if suffixes == {".parquet"} else "arrow", found), problems


def card_patterns(root: Path) -> tuple[dict[str, list[str]] | None, Problems]:
    card = root / "README.md"
    if not card.is_file():
        return None, [("README.md", "missing: the card (and stats.json) are written last, so the generation "
                                    "did not finish; rerun the same command")]
    text = card.read_text()
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
        if layout.suffix == "arrow" and count != expected:
            problems.append((f"data/{name}", f"{count} {split} shards, but {rows} rows in shards of {shard_size} "
                                             f"make {expected}"))
    return problems


def marker_problems(root: Path, layout: Layout) -> Problems:
    """Arrow shards: each finished by the store's one check (its done marker, which is attached to the shard, and
    the file's size agree), and no marker is left without its shard."""
    store, problems = OutputStore(root), []
    for name, shards in layout.shards.items():
        known = set()
        for shard in (s for s in shards if s.name is not None):
            known.add(store.marker_path(shard.name).name)
            shard.marker, problem = store.shard_state(shard.name)
            if problem is not None:
                problems.append((shard.relative, problem))
        for marker in sorted(store.done_dir.glob(f"{name}-*.json")) if store.done_dir.is_dir() else []:
            if marker.name not in known:
                problems.append((marker.relative_to(root).as_posix(), "done marker without its shard file"))
    return problems


def layout_problems(root: Path, layout: Layout, manifest: Manifest,
                    split_rows: dict[str, dict[str, int]]) -> Problems:
    """`split_rows`: config -> split -> rows, from the sample space and the split plan."""
    patterns, problems = card_patterns(root)
    for name, shards in layout.shards.items():
        for shard in shards:
            if patterns is not None and not any(fnmatch.fnmatch(shard.relative, p) for p in patterns.get(name, [])):
                problems.append((shard.relative, f"not listed in README.md data_files of config {name!r}"))
        problems += numbering_problems(name, shards, layout, manifest, split_rows[name])
    if layout.suffix == "arrow":
        problems += marker_problems(root, layout)
    return problems
