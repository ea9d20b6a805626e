"""Check a generated dataset against its own definition, row by row, by recomputing it.

Every check reuses the generator's pure functions (plan, composite, stats), so `verify` checks the data
against the code's definition, not against a second implementation of it:

* layout: every shard of every config is present, complete (whole file, done marker with matching row
  count and size for Arrow shards), numbered without gaps, listed in the card's `data_files`;
* rows: per-config row counts equal the sample space of `manifest.json`; `sample_id` covers the space
  exactly once; `bg_id`, `fg_id`, `flip` follow from `sample_id`; `x`, `y`, `scale` equal the placement
  drawn from `(seed, sample_id)`; `depth_min < depth_max`, both finite;
* images: each decodes with the declared format, mode and size; `mask` equals the `foregrounds` image's
  alpha placed at the row's (fg_id, flip, x, y, scale) and thresholded; `bbox` is the mask's box;
  `fg_bg` equals the recomposite over the stored background (see `composite_error`);
* statistics: `stats.json` equals a recomputation from the decoded images (full pass only).

Shards are read one record batch at a time (Arrow IPC streams batch by batch, Parquet by row batch),
so memory does not grow with the number of rows; only a bitmap of seen sample ids (1 byte per sample)
and the decoded backgrounds and foregrounds stay resident.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import io
import json
import math
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from builder.composite import composite, mask_bbox, placed_foreground, placed_mask
from builder.plan import Placement, SampleSpace, draw_placement, placed_size, shard_tasks
from builder.shards import STATE_DIR, read_shard_batches, read_shard_schema
from builder.stats import MAX_VALUE, ImageStats
from fgbg_depth import CONFIG_NAMES, KEY_COLUMNS, features

SHARD_NAME = re.compile(r"^train-(\d{5})-of-(\d{5})\.(arrow|parquet)$")
MAX_MESSAGES = 200  # problems kept verbatim; the rest are counted


class VerifyUsageError(Exception):
    """The folder is not a dataset at all (exit code 2)."""


# --------------------------------------------------------------------------------------------- tolerance

def jpeg_scale(quality: int) -> float:
    """libjpeg's quantisation-table scale for a quality setting: 1.0 at 50, 0.1 at 95, 0 at 100."""
    return (200 - 2 * quality) / 100 if quality >= 50 else 50 / quality


def composite_tolerance(quality: int) -> tuple[float, float]:
    """(mean, block) limits on |stored fg_bg - recomposite over the stored background| inside the pasted area.

    The generator composites over the *original* background and JPEG-encodes the result; the verifier can
    only composite over the *stored* (JPEG) background. The difference is two JPEG round trips, so it grows
    with the quantisation step. Measured on the demo inputs at R = 64, 100, 224 (worst row of 720 per
    setting): mean 3.6 / worst 8x8-block mean 11.9 at quality 95, 7.4 / 21.6 at 50, 9.8 / 30.8 at 20; on
    JPEG's worst cases at R = 224 (uniform noise, 1 px magenta/green stripes): 2.0 / 11.9 at 95, 6.2 / 27.2
    at 50. Chroma subsampling alone gives 8x8-block errors near 10 at sharp colour edges even at quality 100,
    hence the constant terms. The limits below are 2 to 4 times the worst case seen at every quality. Outside
    the pasted area (aligned to the 16 px JPEG MCU grid plus an 8 px margin for chroma upsampling) the
    encoder saw identical pixels in the background and the composite, so there the check is exact.
    """
    s = jpeg_scale(quality)
    return 6.0 + 12.0 * s, 24.0 + 40.0 * s


def paste_window(placement: Placement, resolution: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pasted box grown to the 16 px MCU grid plus 8 px, clipped to the frame."""
    x0 = max(0, placement.x // 16 * 16 - 8)
    y0 = max(0, placement.y // 16 * 16 - 8)
    x1 = min(resolution, -(-(placement.x + placement.width) // 16) * 16 + 8)
    y1 = min(resolution, -(-(placement.y + placement.height) // 16) * 16 + 8)
    return x0, y0, x1, y1


def composite_error(stored: np.ndarray, background: np.ndarray, fg_placed: np.ndarray, placement: Placement,
                    quality: int) -> str | None:
    """None if the stored composite matches the recomposite, else what is wrong."""
    resolution = stored.shape[0]
    expected = composite(background, fg_placed, placement).astype(np.int16)
    diff = np.abs(stored.astype(np.int16) - expected)
    x0, y0, x1, y1 = paste_window(placement, resolution)
    outside = np.ones(stored.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    if outside.any():
        wrong = int((diff[outside] != 0).any(axis=-1).sum())
        if wrong:
            return (f"{wrong} pixels outside the pasted area differ from the stored background "
                    f"(must be identical there); max error {int(diff[outside].max())}")
    inside = diff[y0:y1, x0:x1].astype(np.float64)
    mean_limit, block_limit = composite_tolerance(quality)
    mean = float(inside.mean())
    h, w = inside.shape[0] // 8 * 8, inside.shape[1] // 8 * 8
    block = float(inside[:h, :w].reshape(h // 8, 8, w // 8, 8, -1).mean(axis=(1, 3, 4)).max()) if h and w else 0.0
    if mean > mean_limit or block > block_limit:
        return (f"composite differs from the recomposite inside the pasted area: mean abs error {mean:.2f} "
                f"(limit {mean_limit:.2f}), worst 8x8 block {block:.2f} (limit {block_limit:.2f})")
    return None


# --------------------------------------------------------------------------------------------- reading

@dataclasses.dataclass
class Shard:
    config_name: str
    path: Path
    relative: str
    index: int | None  # from the file name, None if it does not follow train-XXXXX-of-NNNNN
    count: int | None
    marker: dict | None = None  # Arrow shards: the done marker's content


def iter_batches(path: Path, batch_rows: int = 64) -> Iterator[pa.RecordBatch]:
    """Record batches of an Arrow IPC stream or a Parquet file, one at a time."""
    if path.suffix == ".parquet":
        yield from pq.ParquetFile(str(path)).iter_batches(batch_size=batch_rows)
        return
    yield from read_shard_batches(path)


def shard_schema(path: Path) -> pa.Schema:
    if path.suffix == ".parquet":
        return pq.read_schema(str(path))
    return read_shard_schema(path)


def decode_image(cell: dict | None, fmt: str, mode: str, size: tuple[int, int] | None) -> tuple[np.ndarray, bytes]:
    """Pixels of an Image cell, after checking format, mode and size; raises ValueError naming what is wrong."""
    if cell is None or cell.get("bytes") is None:
        raise ValueError("no image bytes")
    data = cell["bytes"]
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for corrupt data
        raise ValueError(f"does not decode ({type(err).__name__}: {err})") from None
    if image.format != fmt or image.mode != mode:
        raise ValueError(f"is {image.format} mode {image.mode}, expected {fmt} mode {mode}")
    if size is not None and image.size != size:
        raise ValueError(f"is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}")
    return np.asarray(image), data


# --------------------------------------------------------------------------------------------- report

@dataclasses.dataclass
class Report:
    problems: list[str] = dataclasses.field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    image_checked: dict[str, int] = dataclasses.field(default_factory=dict)
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

    def summary(self) -> str:
        lines = [f"layout: {self.layout}"]
        for name in CONFIG_NAMES:
            if name in self.rows:
                lines.append(f"{name}: {self.shards.get(name, 0)} shard(s), {self.rows[name]:,} rows, "
                             f"{self.image_checked.get(name, 0):,} rows with images decoded and recomputed")
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


# --------------------------------------------------------------------------------------------- verifier

@dataclasses.dataclass
class Settings:
    resolution: int
    placements: int
    seed: int
    scale_min: float
    scale_max: float
    mask_threshold: int
    jpeg_quality: int
    shard_size: int | None
    with_depth: bool
    bg_names: list[str]
    fg_names: list[str]

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Settings":
        s = manifest["settings"]
        return cls(s["resolution"], s["placements"], s["seed"], s["scale_min"], s["scale_max"], s["mask_threshold"],
                   s["jpeg_quality"], s.get("shard_size"), not s["no_depth"],
                   [f["name"] for f in manifest["inputs"]["backgrounds"]],
                   [f["name"] for f in manifest["inputs"]["foregrounds"]])


class Verifier:
    def __init__(self, root: Path, sample: int | None = None, seed: int = 0, workers: int = 1,
                 manifest_path: Path | None = None):
        self.root = Path(root)
        self.sample = sample
        self.rng = np.random.default_rng([seed, 0x5EED])
        self.workers = max(1, workers)
        self.report = Report()
        self.full = sample is None
        manifest_path = Path(manifest_path) if manifest_path else self.root / "manifest.json"
        if not self.root.is_dir():
            raise VerifyUsageError(f"{self.root} is not a folder")
        if not manifest_path.is_file():
            raise VerifyUsageError(f"{manifest_path} is missing: it holds the settings and inputs the data is checked "
                                   "against (pass --manifest for a folder without one)")
        self.manifest = json.loads(manifest_path.read_text())
        self.settings = Settings.from_manifest(self.manifest)
        self.space = SampleSpace(len(self.settings.bg_names), len(self.settings.fg_names), self.settings.placements)
        self.stats: dict[str, ImageStats] = {}
        self.backgrounds: dict[int, np.ndarray] = {}
        self.foregrounds: dict[int, np.ndarray] = {}
        self.seen = np.zeros(len(self.space), dtype=np.uint8)  # 1 byte per sample: 400 KB for 400,000 rows
        self.lock = threading.Lock()

    # -- layout -------------------------------------------------------------------------------------------

    def find_shards(self) -> dict[str, list[Shard]]:
        report, found = self.report, {}
        suffixes = set()
        for name in CONFIG_NAMES:
            folder = self.root / "data" / name
            shards = []
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                relative = path.relative_to(self.root).as_posix()
                match = SHARD_NAME.match(path.name)
                if path.suffix not in (".arrow", ".parquet"):
                    report.fail(relative, "unexpected file among the shards (a leftover temp file?)")
                    continue
                suffixes.add(path.suffix)
                shards.append(Shard(name, path, relative, *(int(g) for g in match.groups()[:2]) if match
                                    else (None, None)))
            if not shards:
                report.fail(f"data/{name}", "no shard files: the config is missing")
            found[name] = shards
        if len(suffixes) > 1:
            report.fail("data", "mixes .arrow and .parquet shards")
        self.report.layout = "parquet export" if suffixes == {".parquet"} else "arrow shards (generator output)"
        return found

    def check_listing(self, found: dict[str, list[Shard]]) -> None:
        """Numbering without gaps, listed in the card's data_files; for Arrow: done markers match the files."""
        report = self.report
        patterns = self.card_patterns()
        for name, shards in found.items():
            for shard in shards:
                if patterns is not None and not any(fnmatch.fnmatch(shard.relative, p) for p in patterns.get(name, [])):
                    report.fail(shard.relative, f"not listed in README.md data_files of config {name!r}")
            numbered = [s for s in shards if s.index is not None]
            for shard in shards:
                if shard.index is None:
                    report.fail(shard.relative, "name does not follow train-XXXXX-of-NNNNN")
            counts = {s.count for s in numbered}
            if len(counts) > 1:
                report.fail(f"data/{name}", f"shards disagree on the shard count: {sorted(counts)}")
            elif counts:
                count = counts.pop()
                missing = sorted(set(range(count)) - {s.index for s in numbered})
                for index in missing:
                    report.fail(f"data/{name}/train-{index:05d}-of-{count:05d}", "shard is missing")
                if self.report.layout.startswith("arrow") and self.settings.shard_size:
                    rows = self.space.config_rows(name)
                    expected = len(shard_tasks(name, rows, self.settings.shard_size))
                    if count != expected:
                        report.fail(f"data/{name}", f"{count} shards, but {rows} rows in shards "
                                                    f"of {self.settings.shard_size} make {expected}")
        if self.report.layout.startswith("arrow"):
            self.check_markers(found)

    def card_patterns(self) -> dict[str, list[str]] | None:
        card = self.root / "README.md"
        if not card.is_file():
            self.report.fail("README.md", "missing: the card (and stats.json) are written last, so the generation "
                                          "did not finish; rerun the same command")
            return None
        text = card.read_text()
        try:
            header = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else None
            return {c["config_name"]: [f["path"] for f in c["data_files"]] for c in header["configs"]}
        except Exception as err:
            self.report.fail("README.md", f"no readable YAML header with configs/data_files ({err})")
            return None

    def check_markers(self, found: dict[str, list[Shard]]) -> None:
        done = self.root / STATE_DIR / "done"
        for name, shards in found.items():
            for shard in shards:
                if shard.index is None:
                    continue
                marker = done / f"{name}-{shard.index:05d}-of-{shard.count:05d}.json"
                if not marker.is_file():
                    self.report.fail(shard.relative, f"no done marker {marker.relative_to(self.root)}: the shard was "
                                                     "never finished; rerun the generation to redo it")
                    continue
                data = json.loads(marker.read_text())
                size = shard.path.stat().st_size
                if data.get("file_bytes") != size:
                    self.report.fail(shard.relative, f"is {size} bytes, its done marker says {data.get('file_bytes')}")
                shard.marker = data
            known = {f"{name}-{s.index:05d}-of-{s.count:05d}.json" for s in shards if s.index is not None}
            for marker in sorted(done.glob(f"{name}-*.json")) if done.is_dir() else []:
                if marker.name not in known:
                    self.report.fail(marker.relative_to(self.root).as_posix(), "done marker without its shard file")

    # -- rows ---------------------------------------------------------------------------------------------

    def want_images(self, n_rows: int) -> np.ndarray:
        if self.full or self.sample >= n_rows:
            return np.ones(n_rows, dtype=bool)
        chosen = np.zeros(n_rows, dtype=bool)
        chosen[self.rng.choice(n_rows, size=self.sample, replace=False)] = True
        return chosen

    def add_stats(self, kind: str, pixels: np.ndarray, data: bytes) -> None:
        if self.full:
            with self.lock:
                self.stats.setdefault(kind, ImageStats(MAX_VALUE[kind])).add(pixels, len(data))

    def read_shard(self, shard: Shard, check_row) -> int:
        """Run `check_row(where, row, with_images)` on each row; returns the number of rows."""
        name = shard.config_name
        try:
            schema = shard_schema(shard.path)
        except Exception as err:
            self.report.fail(shard.relative, f"unreadable ({type(err).__name__}: {err})")
            return 0
        expected = features(name, self.settings.with_depth).arrow_schema
        if [(f.name, f.type) for f in schema] != [(f.name, f.type) for f in expected]:
            self.report.fail(shard.relative, f"schema {schema.names} does not match the {name!r} features "
                                             f"{expected.names}")
            return 0
        rows = 0
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                # Image checks of a batch need its rows only; sampling is per shard, so count rows first.
                total = self.count_rows(shard)
                chosen = self.want_images(total)
                for batch in iter_batches(shard.path):
                    cells = batch.to_pylist()
                    flags = chosen[rows:rows + len(cells)] if rows + len(cells) <= total else \
                        np.ones(len(cells), dtype=bool)
                    wheres = [f"{shard.relative} row {rows + n}" for n in range(len(cells))]
                    results = list(pool.map(check_row, wheres, cells, flags))
                    for where, result in zip(wheres, results):
                        for message in result:
                            self.report.fail(where, message)
                    self.report.image_checked[name] = self.report.image_checked.get(name, 0) + int(flags.sum())
                    rows += len(cells)
        except Exception as err:
            self.report.fail(shard.relative, f"unreadable after {rows} rows ({type(err).__name__}: {err}); "
                                             "the file is truncated or corrupt")
        marker = shard.marker
        if marker is not None and marker.get("rows") != rows:
            self.report.fail(shard.relative, f"holds {rows} rows, its done marker says {marker.get('rows')}")
        return rows

    @staticmethod
    def count_rows(shard: Shard) -> int:
        if shard.path.suffix == ".parquet":
            return pq.ParquetFile(str(shard.path)).metadata.num_rows
        return sum(batch.num_rows for batch in read_shard_batches(shard.path))

    def check_depth(self, row: dict, with_images: bool, kind: str, problems: list[str], prefix: str = "") -> None:
        if not self.settings.with_depth:
            return
        low, high = row["depth_min"], row["depth_max"]
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            problems.append(f"{prefix}depth_min {low} / depth_max {high}: need finite values with "
                            "depth_min < depth_max")
        if with_images:
            r = self.settings.resolution
            try:
                depth, data = decode_image(row["depth"], "PNG", "I;16", (r, r))
                self.add_stats(kind, depth, data)
            except ValueError as err:
                problems.append(f"{prefix}depth {err}")

    def check_foreground_row(self, where: str, row: dict, with_images: bool) -> list[str]:
        problems = []
        fg_id = row["fg_id"]
        if fg_id is None or not 0 <= fg_id < self.space.n_fg:
            return [f"fg_id {fg_id} outside [0, {self.space.n_fg})"]
        if row["source"] != self.settings.fg_names[fg_id]:
            problems.append(f"source {row['source']!r}, the manifest says {self.settings.fg_names[fg_id]!r}")
        # Always decoded: the default config's masks and composites are checked against these pixels.
        try:
            rgba, data = decode_image(row["image"], "PNG", "RGBA", None)
            self.add_stats("fg", rgba, data)
            self.foregrounds[fg_id] = rgba
            alpha = rgba[..., 3]
            if not (alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()):
                problems.append("image is not cropped to its alpha box")
            mask, mask_data = decode_image(row["mask"], "PNG", "L", (rgba.shape[1], rgba.shape[0]))
            self.add_stats("fg_mask", mask, mask_data)
            expected = np.where(alpha >= self.settings.mask_threshold, 255, 0).astype(np.uint8)
            if not np.array_equal(mask, expected):
                problems.append(f"mask differs from alpha >= {self.settings.mask_threshold} in "
                                f"{int((mask != expected).sum())} pixels")
        except ValueError as err:
            problems.append(f"image {err}")
        return problems

    def check_background_row(self, where: str, row: dict, with_images: bool) -> list[str]:
        problems = []
        bg_id = row["bg_id"]
        if bg_id is None or not 0 <= bg_id < self.space.n_bg:
            return [f"bg_id {bg_id} outside [0, {self.space.n_bg})"]
        if row["source"] != self.settings.bg_names[bg_id]:
            problems.append(f"source {row['source']!r}, the manifest says {self.settings.bg_names[bg_id]!r}")
        r = self.settings.resolution
        try:
            rgb, data = decode_image(row["image"], "JPEG", "RGB", (r, r))
            self.add_stats("bg", rgb, data)
            self.backgrounds[bg_id] = rgb
        except ValueError as err:
            problems.append(f"image {err}")
        self.check_depth(row, with_images, "bg_depth", problems)
        return problems

    def check_sample_row(self, where: str, row: dict, with_images: bool) -> list[str]:
        s, problems = self.settings, []
        sample_id = row["sample_id"]
        if sample_id is None or not 0 <= sample_id < len(self.space):
            return [f"sample_id {sample_id} outside the sample space [0, {len(self.space)})"]
        with self.lock:
            self.seen[sample_id] += 1
        bg_id, fg_id, flip, _ = self.space.decompose(sample_id)
        ids = (row["bg_id"], row["fg_id"], row["flip"])
        if ids != (bg_id, fg_id, bool(flip)):
            problems.append(f"sample_id {sample_id} is (bg_id, fg_id, flip) = {(bg_id, fg_id, bool(flip))}, "
                            f"the row says {ids}")
        where_id = f"sample_id {sample_id}"
        foreground = self.foregrounds.get(fg_id)
        if foreground is None:
            return problems + [f"{where_id}: foreground {fg_id} is unavailable, cannot check placement or images"]
        drawn = draw_placement(s.seed, sample_id, *foreground.shape[:2], s.resolution, s.scale_min, s.scale_max)
        stored = (row["x"], row["y"], float(np.float32(row["scale"])) if row["scale"] is not None else None)
        if stored != (drawn.x, drawn.y, drawn.scale):
            problems.append(f"{where_id}: (x, y, scale) = {stored}, but seed {s.seed} draws "
                            f"{(drawn.x, drawn.y, drawn.scale)}")
        self.check_depth(row, with_images, "depth", problems, prefix=f"{where_id}: ")
        if not with_images:
            return problems
        # The placement as recorded in the row (so a wrong row shows up as a wrong mask too).
        height, width = placed_size(stored[2] or 0.0, *foreground.shape[:2], s.resolution)
        placement = Placement(row["x"], row["y"], stored[2], width, height)
        r = s.resolution
        try:
            mask, mask_data = decode_image(row["mask"], "PNG", "L", (r, r))
            self.add_stats("mask", mask, mask_data)
        except ValueError as err:
            mask = None
            problems.append(f"{where_id}: mask {err}")
        try:
            fg_bg, fg_bg_data = decode_image(row["fg_bg"], "JPEG", "RGB", (r, r))
            self.add_stats("fg_bg", fg_bg, fg_bg_data)
        except ValueError as err:
            fg_bg = None
            problems.append(f"{where_id}: fg_bg {err}")
        if not (0 <= placement.x <= r - width and 0 <= placement.y <= r - height):
            return problems + [f"{where_id}: the foreground at x={placement.x} y={placement.y} "
                               f"({width}x{height}) is not inside the frame"]
        placed = placed_foreground(foreground, bool(flip), placement)
        if mask is not None:
            expected = placed_mask(placed, placement, r, s.mask_threshold)
            if not np.array_equal(mask, expected):
                problems.append(f"{where_id}: mask differs in {int((mask != expected).sum())} pixels from foreground "
                                f"{fg_id}'s alpha >= {s.mask_threshold} placed at flip={bool(flip)} x={placement.x} "
                                f"y={placement.y} scale={placement.scale}")
            if list(row["bbox"] or []) != mask_bbox(mask):
                problems.append(f"{where_id}: bbox {row['bbox']} is not the mask's box {mask_bbox(mask)}")
        background = self.backgrounds.get(bg_id)
        if fg_bg is not None and background is None:
            problems.append(f"{where_id}: background {bg_id} is unavailable, cannot check the composite")
        elif fg_bg is not None:
            error = composite_error(fg_bg, background, placed, placement, s.jpeg_quality)
            if error:
                problems.append(f"{where_id}: {error}")
        return problems

    # -- whole dataset ------------------------------------------------------------------------------------

    def run(self) -> Report:
        found = self.find_shards()
        self.check_listing(found)
        check = {"foregrounds": self.check_foreground_row, "backgrounds": self.check_background_row,
                 "default": self.check_sample_row}
        # The small configs first: the sample checks recomposite from their stored pixels.
        for name in ("foregrounds", "backgrounds", "default"):
            rows = sum(self.read_shard(shard, check[name]) for shard in found[name])
            self.report.rows[name] = rows
            self.report.shards[name] = len(found[name])
            if rows != self.space.config_rows(name):
                self.report.fail(f"data/{name}", f"{rows} rows, but the sample space of manifest.json has "
                                                 f"{self.space.config_rows(name)}")
            if name != "default":
                have = self.foregrounds if name == "foregrounds" else self.backgrounds
                missing = sorted(set(range(self.space.config_rows(name))) - set(have))
                if missing:
                    self.report.fail(f"data/{name}", f"{KEY_COLUMNS[name]} missing or unusable: {missing[:20]}")
        self.check_coverage()
        self.check_stats(found)
        leftovers = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*.tmp") if p.is_file()]
        if leftovers:
            self.report.notes.append(f"{len(leftovers)} temp file(s) of an interrupted run, e.g. {leftovers[0]}: "
                                     "not part of the data; the next run into this folder removes them")
        return self.report

    def check_coverage(self) -> None:
        missing = np.flatnonzero(self.seen == 0)
        repeated = np.flatnonzero(self.seen > 1)
        if missing.size:
            self.report.fail("data/default", f"{missing.size} sample_id(s) missing, e.g. {missing[:10].tolist()}")
        if repeated.size:
            self.report.fail("data/default", f"{repeated.size} sample_id(s) appear more than once, "
                                             f"e.g. {repeated[:10].tolist()}")

    def check_stats(self, found: dict[str, list[Shard]]) -> None:
        path = self.root / "stats.json"
        if not path.is_file():
            self.report.fail("stats.json", "missing: the generation did not finish; rerun the same command")
            return
        saved = json.loads(path.read_text())
        for name in CONFIG_NAMES:
            if saved.get("rows", {}).get(name) != self.report.rows.get(name):
                self.report.fail("stats.json", f"rows[{name}] = {saved.get('rows', {}).get(name)}, "
                                               f"the shards hold {self.report.rows.get(name)}")
        if self.report.layout.startswith("arrow"):
            sizes = {name: sum(s.path.stat().st_size for s in found[name]) for name in CONFIG_NAMES}
            if saved.get("num_bytes") != sizes:
                self.report.fail("stats.json", f"num_bytes {saved.get('num_bytes')} != shard sizes {sizes}")
            if saved.get("data_bytes") != sum(sizes.values()):
                self.report.fail("stats.json", f"data_bytes {saved.get('data_bytes')} != {sum(sizes.values())}")
        if not self.full:
            return
        self.report.stats_checked = True
        kinds = saved.get("kinds", {})
        if sorted(kinds) != sorted(self.stats):
            self.report.fail("stats.json", f"kinds {sorted(kinds)}, the data has {sorted(self.stats)}")
        exact = ("max_value", "count", "encoded_bytes", "pixels", "sums", "sums_of_squares")
        for kind in sorted(set(kinds) & set(self.stats)):
            ours = self.stats[kind].to_json()
            wrong = [f"{key} {kinds[kind].get(key)} (recomputed {ours[key]})" for key in exact
                     if kinds[kind].get(key) != ours[key]]
            if not wrong:  # mean and std follow from the sums; only checked on their own when those agree
                wrong = [f"{key} {kinds[kind].get(key)} (recomputed {ours[key]})" for key in ("mean", "std")
                         if len(kinds[kind].get(key) or []) != len(ours[key])
                         or not np.allclose(kinds[kind][key], ours[key], rtol=1e-12, atol=0)]
            if wrong:
                self.report.fail("stats.json", f"{kind} differs from the recomputation: {'; '.join(wrong)}")


def verify(root: str | Path, sample: int | None = None, seed: int = 0, workers: int = 1,
           manifest: str | Path | None = None) -> Report:
    """Check a dataset folder; `sample=N` decodes N random rows per shard (structure is checked on every row)."""
    return Verifier(Path(root), sample, seed, workers, manifest).run()
