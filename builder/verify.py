"""Check a generated dataset (Arrow output or a Parquet export) against its own definition by recomputing it.

Four parts, each in its own module: the layout (`verify_layout`), reading shards batch by batch
(`verify_reader`), pure row checks against an immutable reference (`checks`), and the statistics
(`verify_stats`). This module runs them in order and collects a `Report`. Memory stays flat: only the stored
inputs, one record batch and a count per key (1 byte per sample) stay resident.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from builder.checks import Reference, decode_checked
from builder.configs import CONFIGS, DatasetConfig
from builder.errors import UsageError
from builder.plan import SampleSpace
from builder.schema import BACKGROUNDS, CONFIG_NAMES, FOREGROUNDS
from builder.settings import Manifest
from builder.stats import ImageStats, StatsBook, merge_all
from builder.verify_layout import Layout, Problems, Shard, find_layout, layout_problems
from builder.verify_reader import expected_rows, iter_rows, rows_with_images, shard_schema
from builder.verify_depth import load_estimator, shard_depth_problems
from builder.verify_stats import counts_problems, kinds_problems

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
        lines = [f"layout: {self.layout}"]
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


def load_manifest(root: Path, manifest_path: Path | None) -> Manifest:
    manifest_path = Path(manifest_path) if manifest_path else root / "manifest.json"
    if not root.is_dir():
        raise VerifyUsageError(f"{root} is not a folder")
    if not manifest_path.is_file():
        raise VerifyUsageError(f"{manifest_path} is missing: it holds the settings and inputs the data is checked "
                               "against (pass --manifest for a folder without one)")
    return Manifest.from_json(json.loads(manifest_path.read_text()))


def load_reference(manifest: Manifest, layout: Layout) -> Reference:
    """The stored backgrounds and cut-outs, decoded once: every sample row is checked against them. A row that
    does not decode is left out (its own check reports it; samples that need it say it is unavailable)."""
    decoded = {}
    for schema in (BACKGROUNDS, FOREGROUNDS):
        arrays = decoded[schema.name] = {}
        for shard in layout.shards[schema.name]:
            try:
                for _, rows, _ in iter_rows(shard, np.zeros(0, dtype=bool)):
                    for row in rows:
                        try:
                            array = decode_checked(row["image"], schema, "image", None, StatsBook(schema.peaks))
                        except (ValueError, TypeError):
                            continue
                        array.setflags(write=False)
                        arrays[row[schema.key_column]] = array
            except Exception:  # noqa: BLE001 - an unreadable shard is reported when it is checked
                continue
    return Reference(manifest, decoded["backgrounds"], decoded["foregrounds"])


@dataclasses.dataclass
class ShardCheck:
    """Runs one config's pure row check over a shard and records the outcome."""

    config: DatasetConfig
    reference: Reference
    report: Report
    pool: ThreadPoolExecutor
    keys: np.ndarray  # how often each key of the config was seen
    stats: list  # per-batch statistics, by kind

    def run(self, shard: Shard, sample: int | None, seed: int) -> int:
        expected = self.config.schema.features(self.reference.settings.with_depth,
                                                 self.reference.settings.with_augment).arrow_schema
        try:
            schema = shard_schema(shard)
        except Exception as err:  # noqa: BLE001 - any unreadable file
            self.report.fail(shard.relative, f"unreadable ({type(err).__name__}: {err})")
            return 0
        if [(f.name, f.type) for f in schema] != [(f.name, f.type) for f in expected]:
            self.report.fail(shard.relative, f"schema {schema.names} does not match the {self.config.name!r} "
                                             f"features {expected.names}")
            return 0
        rows = 0
        try:
            chosen = rows_with_images(shard, expected_rows(shard), sample, seed)
            for offset, cells, flags in iter_rows(shard, chosen):
                self.check_batch(shard, offset, cells, flags)
                rows = offset + len(cells)
        except Exception as err:  # noqa: BLE001 - a truncated or corrupt stream
            self.report.fail(shard.relative, f"unreadable after {rows} rows ({type(err).__name__}: {err}); "
                                             "the file is truncated or corrupt")
        if shard.marker is not None and shard.marker.get("rows") != rows:
            self.report.fail(shard.relative, f"holds {rows} rows, its done marker says {shard.marker.get('rows')}")
        return rows

    def check_batch(self, shard: Shard, offset: int, cells: list[dict], flags: np.ndarray) -> None:
        check = self.config.check_row
        results = list(self.pool.map(lambda row, flag: check(self.reference, row, bool(flag)), cells, flags))
        for n, (row, result) in enumerate(zip(cells, results)):
            for message in result.problems:
                self.report.fail(f"{shard.relative} row {offset + n}", message)
            key = row[self.config.key_column]
            if isinstance(key, int) and 0 <= key < len(self.keys):
                self.keys[key] = min(self.keys[key] + 1, 255)
        self.stats.append(merge_all([self.config.schema.by_kind(r.stats) for r in results]))
        name = self.config.name
        self.report.image_checked[name] = self.report.image_checked.get(name, 0) + int(flags.sum())


def coverage_problems(config: DatasetConfig, keys: np.ndarray) -> Problems:
    missing, repeated = np.flatnonzero(keys == 0), np.flatnonzero(keys > 1)
    key, where, problems = config.key_column, f"data/{config.name}", []
    if missing.size:
        problems.append((where, f"{missing.size} {key}(s) missing, e.g. {missing[:10].tolist()}"))
    if repeated.size:
        problems.append((where, f"{repeated.size} {key}(s) appear more than once, e.g. {repeated[:10].tolist()}"))
    return problems


def verify(root: str | Path, sample: int | None = None, seed: int = 0, workers: int = 1,
           manifest: str | Path | None = None, depth_rows: int | None = None) -> Report:
    """Check a dataset folder; `sample=N` decodes N random rows per shard (structure is checked on every row);
    `depth_rows=N` runs the manifest's depth model again on N rows per shard."""
    root = Path(root)
    loaded = load_manifest(root, manifest)
    estimator = load_estimator(loaded) if depth_rows else None  # before the long part: fail fast if missing
    space = SampleSpace(len(loaded.backgrounds), len(loaded.foregrounds), loaded.settings.placements)
    config_rows = {config.name: config.count_rows(space) for config in CONFIGS}
    report = Report()
    layout, problems = find_layout(root)
    report.layout = layout.description
    report.extend(problems + layout_problems(root, layout, loaded, config_rows))
    reference = load_reference(loaded, layout)
    stats: list[dict[str, ImageStats]] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for config in CONFIGS:
            keys = np.zeros(config_rows[config.name], dtype=np.uint8)
            check = ShardCheck(config, reference, report, pool, keys, stats)
            rows = sum(check.run(shard, sample, seed) for shard in layout.shards[config.name])
            report.rows[config.name], report.shards[config.name] = rows, len(layout.shards[config.name])
            if rows != config_rows[config.name]:
                report.fail(f"data/{config.name}", f"{rows} rows, but the sample space of manifest.json has "
                                                   f"{config_rows[config.name]}")
            report.extend(coverage_problems(config, keys))
            if estimator is not None and config.schema.depth_source:
                for shard in layout.shards[config.name]:
                    report.extend(shard_depth_problems(config, shard, estimator, depth_rows, seed))
                report.depth_checked[config.name] = sum(min(depth_rows, expected_rows(s))
                                                        for s in layout.shards[config.name])
    finish_report(root, layout, report, merge_all(stats), full=sample is None)
    return report


def finish_report(root: Path, layout: Layout, report: Report, recomputed: dict[str, ImageStats], full: bool) -> None:
    path = root / "stats.json"
    if not path.is_file():
        report.fail("stats.json", "missing: the generation did not finish; rerun the same command")
    else:
        saved = json.loads(path.read_text())
        report.extend(counts_problems(saved, layout, report.rows))
        if full:
            report.stats_checked = True
            report.extend(kinds_problems(saved, recomputed))
    leftovers = [p.relative_to(root).as_posix() for p in root.rglob("*.tmp") if p.is_file()]
    if leftovers:
        report.notes.append(f"{len(leftovers)} temp file(s) of an interrupted run, e.g. {leftovers[0]}: "
                            "not part of the data; the next run into this folder removes them")
