"""Check a generated dataset (Arrow output or a Parquet export) against its own definition by recomputing it.

Five parts, each in its own module: the files' sha256 against those recorded when they were written
(`verify_checksums`, first, and alone with `verify_checksums()`), the layout (`verify_layout`), reading shards
batch by batch (`verify_reader`), pure row checks against an immutable reference (`checks`, its stored inputs
decoded on use: `stored`), and the statistics (`verify_stats`). This module runs them in order and collects a
`Report`. Memory stays flat: the stored inputs a bounded cache keeps, one record batch and a count per key (1 byte
per sample) stay resident.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from builder.contract.errors import UsageError
from builder.contract.plan import SplitPlan
from builder.contract.schema import CONFIG_NAMES
from builder.contract.settings import Manifest
from builder.rows.bg_depth import rederived_given_depth_hashes
from builder.rows.configs import CONFIGS, DatasetConfig
from builder.rows.stats import ImageStats, merge_all
from builder.store.names import MANIFEST_NAME, STATS_NAME
from builder.store.output import OutputStore
from builder.store.manifest import read_manifest
from builder.store.storage import open_folder
from builder.verify.checks import ROW_CHECKS, Reference
from builder.verify.checksums import checksum_problems, recorded_checksums
from builder.verify.depth import load_estimator, shard_depth_problems
from builder.verify.layout import Layout, Problems, Shard, find_layout, layout_problems, marker_problems
from builder.verify.reader import expected_rows, iter_rows, rows_with_images, shard_schema
from builder.verify.stats import counts_problems, kinds_problems
from builder.verify.stored import load_reference

MAX_MESSAGES = 200  # problems kept verbatim; the rest are counted


class VerifyUsageError(UsageError):
    """The folder is not a dataset at all (exit code 2)."""

    def __init__(self, message: str):
        super().__init__([message])


@dataclasses.dataclass
class Report:
    problems: list[str] = dataclasses.field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    image_checked: dict[str, int] = dataclasses.field(default_factory=dict)
    depth_checked: dict[str, int] = dataclasses.field(default_factory=dict)
    shards: dict[str, int] = dataclasses.field(default_factory=dict)
    stats_checked: bool = False
    checksums_checked: int = 0
    layout: str = ""

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def fail(self, where: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_MESSAGES:
            self.problems.append(f"{where}: {message}")

    def extend(self, problems: Problems) -> None:
        for where, message in problems:
            self.fail(where, message)

    def summary(self) -> str:
        lines = [f"layout: {self.layout}",
                 (f"checksums: {self.checksums_checked} file(s) hashed and compared with the sha256 recorded when "
                  "they were written")]
        for name in CONFIG_NAMES:
            if name in self.rows:
                lines.append(f"{name}: {self.shards.get(name, 0)} shard(s), {self.rows[name]:,} rows, "
                             f"{self.image_checked.get(name, 0):,} rows with images decoded and recomputed"
                             + (f", {self.depth_checked[name]:,} with depth re-predicted by the model"
                                if name in self.depth_checked else ""))
        lines.append("stats.json: " + ("recomputed from every image" if self.stats_checked else
                                       "not recomputed (only a full pass recomputes it)"))
        lines += [f"note: {n}" for n in self.notes]
        if self.ok:
            lines.append("OK: every check passed")
        else:
            lines += [f"FAIL {p}" for p in self.problems]
            if self.problem_count > len(self.problems):
                lines.append(f"... and {self.problem_count - len(self.problems)} more problem(s)")
            lines.append(f"FAILED: {self.problem_count} problem(s)")
        return "\n".join(lines)


def load_manifest(store: OutputStore, manifest_path: Path | None) -> Manifest:
    """The folder's manifest.json, or the one given with --manifest (a file anywhere)."""
    folder, name = (open_folder(Path(manifest_path).parent), Path(manifest_path).name) if manifest_path else \
        (store.folder, MANIFEST_NAME)
    if not store.folder.is_dir():
        raise VerifyUsageError(f"{store.root} is not a folder")
    if not folder.is_file(name):
        raise VerifyUsageError(f"{folder.path(name)} is missing: it holds the settings and inputs the data is "
                               "checked against (pass --manifest for a folder without one)")
    return read_manifest(folder, name)


def given_depth_file_problems(manifest: Manifest, folder: Path) -> Problems:
    """--bg-depth-dir: each stored map against the one made again from the user's file (whose sha256 the manifest
    records), by its recorded hash: checks the crop, resize and encoding, which the stored map alone cannot."""
    if not manifest.stores_given_depth:
        raise VerifyUsageError("--bg-depth-dir: this dataset stores no --bg-depth-dir maps to compare with their "
                               "files: drop --bg-depth-dir (one made with --bg-depth-dir before datasets stored the "
                               "maps cannot be verified: regenerate it)")
    return [(f"{Path(folder) / record.name}", f"the map made from this file is not the one the manifest records as "
                                              f"stored (stored sha256 {record.stored_sha256[:12]}..., made "
                                              f"{remade[:12]}...)")
            for record, remade in zip(manifest.bg_depths, rederived_given_depth_hashes(manifest, folder))
            if remade != record.stored_sha256]


@dataclasses.dataclass
class Tally:
    """What one config's split held: how often each key was seen, the input ids its rows use, statistics."""

    keys: np.ndarray
    ids: dict[str, set] = dataclasses.field(default_factory=lambda: {"bg_id": set(), "fg_id": set()})
    stats: list = dataclasses.field(default_factory=list)
    rows: int = 0


@dataclasses.dataclass
class ShardCheck:
    """Runs one config's pure row check over its shards and tallies what each split held."""

    config: DatasetConfig
    reference: Reference
    report: Report
    pool: ThreadPoolExecutor
    key_space: int
    tallies: dict[str, Tally] = dataclasses.field(default_factory=dict)

    def run(self, shard: Shard, sample: int | None, seed: int) -> None:
        expected = self.config.schema.features(**self.reference.manifest.column_groups).arrow_schema
        try:
            schema = shard_schema(shard)
        except Exception as err:  # noqa: BLE001 - any unreadable file
            self.report.fail(shard.relative, f"unreadable ({type(err).__name__}: {err})")
            return
        if [(f.name, f.type) for f in schema] != [(f.name, f.type) for f in expected]:
            self.report.fail(shard.relative, f"schema {schema.names} does not match the {self.config.name!r} "
                                             f"features {expected.names}")
            return
        split = shard.name.split if shard.name else "train"
        tally = self.tallies.setdefault(split, Tally(np.zeros(self.key_space, dtype=np.uint8)))
        rows = 0
        try:
            chosen = rows_with_images(shard, expected_rows(shard), sample, seed)
            for offset, cells, flags in iter_rows(shard, chosen):
                self.check_batch(shard, split, tally, offset, cells, flags)
                rows = offset + len(cells)
        except Exception as err:  # noqa: BLE001 - a truncated or corrupt stream
            self.report.fail(shard.relative, f"unreadable after {rows} rows ({type(err).__name__}: {err}); "
                                             "the file is truncated or corrupt")
        if shard.marker is not None and shard.marker.rows != rows:
            self.report.fail(shard.relative, f"holds {rows} rows, its done marker says {shard.marker.rows}")
        tally.rows += rows

    def check_batch(self, shard: Shard, split: str, tally: Tally, offset: int, cells: list[dict],
                    flags: np.ndarray) -> None:
        check, reference = ROW_CHECKS[self.config.name], self.reference
        results = list(self.pool.map(lambda row, flag: check(reference, row, bool(flag), split), cells, flags))
        for n, (row, result) in enumerate(zip(cells, results)):
            for message in result.problems:
                self.report.fail(f"{shard.relative} row {offset + n}", message)
            key = row[self.config.key_column]
            if isinstance(key, int) and 0 <= key < len(tally.keys):
                tally.keys[key] = min(tally.keys[key] + 1, 255)
            for column, seen in tally.ids.items():
                if isinstance(row.get(column), int):
                    seen.add(row[column])
        tally.stats.append(merge_all([self.config.schema.by_kind(r.stats) for r in results]))
        name = self.config.name
        self.report.image_checked[name] = self.report.image_checked.get(name, 0) + int(flags.sum())


def coverage_problems(config: DatasetConfig, split: str, tally: Tally, expected: np.ndarray) -> Problems:
    """Every key of the split exactly once (keys of other splits are reported row by row, as misplaced)."""
    missing, repeated = np.flatnonzero((tally.keys == 0) & expected), np.flatnonzero(tally.keys > 1)
    key, where, problems = config.key_column, f"data/{config.name}", []
    if missing.size:
        problems.append((where, f"{missing.size} {key}(s) missing, e.g. {missing[:10].tolist()}"))
    if repeated.size:
        problems.append((where, f"{repeated.size} {key}(s) appear more than once, e.g. {repeated[:10].tolist()}"))
    return problems


def leakage_problems(config: DatasetConfig, tallies: dict[str, Tally], plan: SplitPlan) -> Problems:
    """No held-out background or cut-out in any train row of the config."""
    train = tallies.get("train")
    if train is None:
        return []
    problems = []
    for column, held, what in (("bg_id", plan.held_bg, "background"), ("fg_id", plan.held_fg, "cut-out")):
        if leaked := sorted(train.ids[column] & held):
            problems.append((f"data/{config.name}", f"held-out validation {what}(s) {column} {leaked[:20]} appear "
                                                    "in train rows: the splits leak"))
    return problems


def check_config(config: DatasetConfig, check: ShardCheck, plan: SplitPlan, report: Report) -> None:
    for split in plan.splits:
        keys = config.keys(plan, split)
        tally = check.tallies.setdefault(split, Tally(np.zeros(check.key_space, dtype=np.uint8)))
        if tally.rows != len(keys):
            report.fail(f"data/{config.name}", f"{tally.rows} {split} rows, but the sample space of manifest.json "
                                               f"and its split settings give {len(keys)}")
        expected = np.zeros(check.key_space, dtype=bool)
        expected[np.fromiter((keys[p] for p in range(len(keys))), dtype=np.int64, count=len(keys))] = True
        report.extend(coverage_problems(config, split, tally, expected))
    report.extend(leakage_problems(config, check.tallies, plan))
    report.rows[config.name] = sum(t.rows for t in check.tallies.values())


def verify(root: str | Path, sample: int | None = None, seed: int = 0, workers: int = 1,
           manifest: str | Path | None = None, depth_rows: int | None = None,
           bg_depth_dir: str | Path | None = None) -> Report:
    """Check a dataset folder; `sample=N` decodes N random rows per shard (structure is checked on every row);
    `depth_rows=N` runs the manifest's depth model again on N rows per shard; `bg_depth_dir` (optional): the
    --bg-depth-dir a dataset was made with, whose maps are made again and compared with the stored ones."""
    store = OutputStore(root)
    loaded = load_manifest(store, manifest)
    estimator = load_estimator(loaded) if depth_rows else None  # before the long part: fail fast if missing
    remade = given_depth_file_problems(loaded, bg_depth_dir) if bg_depth_dir is not None else []
    report, (layout, problems) = Report(), find_layout(store)
    reference = load_reference(loaded, layout)
    report.extend(remade)
    if bg_depth_dir is not None:
        report.notes.append(f"the {len(loaded.bg_depths)} stored --bg-depth-dir maps were compared with the maps made "
                            f"again from {bg_depth_dir}")
    plan = reference.plan
    split_rows = {c.name: {split: c.count_rows(plan, split) for split in plan.splits} for c in CONFIGS}
    report.layout = layout.description
    report.extend(problems + layout_problems(store, layout, loaded, split_rows))
    check_checksums(store, layout, report, workers, required=False)
    stats: dict[str, list] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for config in CONFIGS:
            check = ShardCheck(config, reference, report, pool, config.key_count(plan))
            for shard in layout.shards[config.name]:
                check.run(shard, sample, seed)
            report.shards[config.name] = len(layout.shards[config.name])
            check_config(config, check, plan, report)
            for split, tally in check.tallies.items():
                stats.setdefault(split, []).extend(tally.stats)
            if estimator is not None and config.schema.depth_source:
                for shard in layout.shards[config.name]:
                    report.extend(shard_depth_problems(config, shard, estimator, depth_rows, seed,
                                                       loaded.settings.depth_bits))
                report.depth_checked[config.name] = sum(min(depth_rows, expected_rows(s))
                                                        for s in layout.shards[config.name])
    finish_report(store, layout, report, {split: merge_all(parts) for split, parts in stats.items()},
                  full=sample is None)
    return report


def check_checksums(store: OutputStore, layout: Layout, report: Report, workers: int, required: bool) -> None:
    """Arrow shards' done markers must be attached to `layout` already (by the layout checks). A file with no
    recorded checksum (made by an older version) fails when only checksums are checked, and is a note when
    the rows are checked too."""
    recorded, unrecorded = recorded_checksums(store.folder, layout)
    if required:
        report.extend(unrecorded)
    else:
        report.notes += [f"{where}: {what}" for where, what in unrecorded]
    report.extend(checksum_problems(store.folder, recorded, workers))
    report.checksums_checked = len(recorded)


def verify_checksums(root: str | Path, workers: int = 1) -> Report:
    """Only the checksums (and the done markers they live in): one read of each file, no row is decoded."""
    store = OutputStore(root)
    if not store.folder.is_dir():
        raise VerifyUsageError(f"{root} is not a folder")
    report = Report()
    layout, problems = find_layout(store)
    report.layout = layout.description
    report.extend(problems + (marker_problems(store, layout) if layout.generated else []))
    check_checksums(store, layout, report, workers, required=True)
    report.notes.append("only the files' checksums were checked (--checksums); run without it to check the rows")
    return report


def finish_report(store: OutputStore, layout: Layout, report: Report,
                  recomputed: dict[str, dict[str, ImageStats]], full: bool) -> None:
    """stats.json against the shards and, on a full pass, against the recomputation (`recomputed`: per split)."""
    if store.missing(STATS_NAME):
        report.fail(STATS_NAME, "missing: the generation did not finish; rerun the same command")
    else:
        saved = store.read_stats()
        report.extend(counts_problems(saved, store.folder, layout, report.rows))
        if full:
            report.stats_checked = True
            report.extend(kinds_problems(saved, merge_all(list(recomputed.values()))))
            for split, part in saved.get("splits", {}).items():
                report.extend((where, f"split {split}: {what}") for where, what
                              in kinds_problems(part, recomputed.get(split, {})))
    leftovers = store.temp_files()
    if leftovers:
        report.notes.append(f"{len(leftovers)} temp file(s) of an interrupted run, e.g. {leftovers[0]}: "
                            "not part of the data; the next run into this folder removes them")
