"""The Hub layout of a finished dataset (Parquet shards, card, sample grids, checksums) in a folder: written by
`--export-only DIR`, or staged in OUT/.fgbg/hub for an upload (builder.publish.upload), reused while nothing changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features
from datasets import config as datasets_config
from datasets.arrow_writer import get_parquet_column_options, get_writer_batch_size_from_data_size
from tqdm.auto import tqdm

from builder.contract.errors import UsageError
from builder.contract.plan import ShardName, ShardTask
from builder.contract.repo_id import check_repo_id
from builder.contract.schema import CONFIG_NAMES, GRID_COLUMNS
from builder.publish.card import render_card
from builder.publish.license import license_terms, resolve_license
from builder.rows.configs import dataset_tasks
from builder.store.formats import ParquetFiles
from builder.store.local import LocalFolder
from builder.store.names import (CARD_NAME, CHECKSUMS_NAME, EXPORT_NAMES, IMAGES_DIR, MANIFEST_NAME, STATE_DIR,
                                 STATS_NAME, config_dir, grid_path)
from builder.store.manifest import manifest_names
from builder.store.output import OutputStore
from builder.store.storage import open_folder

DEFAULT_MAX_FILE_BYTES = 500 * 1000**2  # datasets' MAX_SHARD_SIZE: "a few hundred MB" per Parquet file
DEFAULT_ROW_GROUP_ROWS = 100  # small groups: cheap for readers without the page index (README, Publishing)


@dataclass(frozen=True)
class ExportOptions:
    """What an export is made with besides the dataset: the repo it is for, its license, and the Parquet sizes."""

    repo_id: str
    license_id: str | None = None
    license_name: str | None = None  # with license_id "other"
    license_link: str | None = None  # with license_id "other"
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_group_rows: int = DEFAULT_ROW_GROUP_ROWS


@dataclass(frozen=True)
class Source:
    """The finished Arrow shards of one config and split, in order, with their rows and bytes from the markers."""

    config_name: str
    split: str
    names: tuple[ShardName, ...]
    rows: int
    num_bytes: int


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    files: dict[str, list[dict]]  # config -> [{"path", "split", "rows", "bytes", "sha256", "row_groups": [...]}]
    arrow_bytes: int
    parquet_bytes: int
    row_group_rows: dict[str, int]


def find_sources(out: Path) -> list[Source]:
    """Every config's shards, after checking that the dataset in `out` is complete (refuse and name what is
    missing otherwise): every shard of the manifest's sample space finished (the store's one check), and the
    run's stats.json, manifest.json and README.md there."""
    store = OutputStore(out)
    if not store.folder.is_dir():
        raise UsageError([f"{out} is not a folder; give the --output-dir of scripts/generate.py"])
    problems = [f"missing {name} (the generation has not finished: rerun scripts/generate.py with the same "
                "settings)" for name in store.missing(MANIFEST_NAME, STATS_NAME, CARD_NAME)]
    sources = []
    if store.has_manifest():
        manifest = store.read_manifest()
        tasks = dataset_tasks(manifest.split_plan(), manifest.settings.shard_size)
        for name, split in dict.fromkeys((t.config_name, t.name.split) for t in tasks):
            found, problem = split_source(store, [t for t in tasks if (t.config_name, t.name.split) == (name, split)])
            sources += [found] if found else []
            problems += [problem] if problem else []
    if problems:
        raise UsageError([f"{out} is not a complete dataset; nothing was exported or uploaded"] + problems)
    return sources


def split_source(store: OutputStore, tasks: list[ShardTask]) -> tuple[Source | None, str | None]:
    """One config's split from its done markers, or what is unfinished about it."""
    name, split = tasks[0].config_name, tasks[0].name.split
    markers, unfinished = store.finished(tasks)
    if unfinished:
        shown = "; ".join(unfinished[:10]) + (f" and {len(unfinished) - 10} more" if len(unfinished) > 10 else "")
        return None, f"config {name!r}: {len(unfinished)} of {len(tasks)} {split} shards unfinished: {shown}"
    return Source(name, split, tuple(t.name for t in tasks), sum(m.rows for m in markers),
                  sum(m.file_bytes for m in markers)), None


def row_group_rows(rows: int, num_bytes: int, cap: int = DEFAULT_ROW_GROUP_ROWS) -> int:
    """About `cap` rows, fewer for big rows: datasets' own rule keeps a row group under 100 MB (the viewer
    scans at most 300 MB per request, through the page index or else whole groups), and small groups keep
    streaming and random access cheap."""
    return max(1, min(cap, get_writer_batch_size_from_data_size(rows, num_bytes)))


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last one may be shorter): one Parquet row group each."""
    pending: list[pa.RecordBatch] = []
    buffered = 0
    for batch in batches:
        pending.append(batch)
        buffered += batch.num_rows
        while buffered >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, buffered = rest.to_batches(), rest.num_rows
    if buffered:
        yield pa.Table.from_batches(pending)


def write_parquet(store: OutputStore, source: Source, building: LocalFolder, max_file_bytes: int, group_rows: int,
                  on_rows: Callable[[int], None] = lambda n: None) -> list[dict]:
    """One config/split as `<split>-0000i-of-0000n.parquet` files of at most about `max_file_bytes`, with
    datasets' Parquet options (images stored uncompressed PLAIN, content-defined chunking so a re-upload of
    regenerated data deduplicates), the page index, and the HF features in the schema metadata."""
    schema = store.shard(source.names[0]).schema()
    options = get_parquet_column_options(Features.from_arrow_schema(schema), schema)  # the shard's own features
    parts: list[dict] = []
    writer = sink = None

    def close():
        writer.close()
        sink.close()
        tmp = parts[-1]["tmp"]  # hashed from the page cache, just written
        parts[-1].update(bytes=building.size(tmp), sha256=building.sha256(tmp))

    batches = (batch for name in source.names for batch in store.batches(name))
    for table in rebatch(batches, group_rows):
        if writer is None:
            tmp = f"{config_dir(source.config_name)}/.{source.split}-{len(parts):05d}.{ParquetFiles.suffix}.tmp"
            parts.append({"tmp": tmp, "rows": 0, "row_groups": []})
            sink = building.create(tmp)
            writer = pq.ParquetWriter(sink, schema, write_page_index=True,
                                      use_content_defined_chunking=datasets_config.DEFAULT_CDC_OPTIONS, **options)
            writer.add_key_value_metadata({"content_defined_chunking":
                                           json.dumps(datasets_config.DEFAULT_CDC_OPTIONS)})
        writer.write_table(table, row_group_size=group_rows)
        parts[-1]["rows"] += table.num_rows
        parts[-1]["row_groups"].append(table.num_rows)
        on_rows(table.num_rows)
        if sink.tell() >= max_file_bytes:
            close()
            writer = None
    if writer is not None:
        close()
    files = []
    for index, part in enumerate(parts):
        name = ShardName(source.config_name, source.split, index, len(parts))
        building.move(part["tmp"], name.relative_path(ParquetFiles.suffix))
        files.append({"path": name.relative_path(ParquetFiles.suffix), "split": source.split,
                      "rows": part["rows"], "bytes": part["bytes"], "sha256": part["sha256"],
                      "row_groups": part["row_groups"]})
    return files


def export(out: Path, folder: Path, options: ExportOptions, progress: bool = True) -> ExportResult:
    """Write the Hub layout of the dataset in `out` into `folder` (built beside it, then renamed into place):
    data/<config>/<split>-*.parquet, images/<kind>.png and a README.md whose YAML points at them."""
    check_repo_id(options.repo_id)
    sources = find_sources(out)
    store, target = OutputStore(out), open_folder(folder)
    manifest, stats = store.read_manifest(), store.read_stats()
    license = license_terms(resolve_license(manifest.model, options.license_id), options.license_name,
                            options.license_link, options.repo_id)
    if store.folder.holds(folder) and not store.folder.sub(STATE_DIR).holds(folder, directly=True):  # .fgbg/hub
        raise UsageError([f"export folder {folder} must not be the dataset folder or inside it (load_dataset on "
                          "the dataset folder would read it too)"])
    if target.exists() and (not target.is_dir() or any(name not in EXPORT_NAMES for name in target.listdir())):
        raise UsageError([f"export folder {folder} holds other files; give a new or empty folder (or a "
                          "previous export, which is replaced)"])
    building = target.staging()
    bar = tqdm(total=sum(s.rows for s in sources), unit="row", desc="parquet", disable=not progress,
               dynamic_ncols=True)
    files: dict[str, list[dict]] = {name: [] for name in CONFIG_NAMES}
    group_rows = {}
    for source in sources:
        building.mkdirs(config_dir(source.config_name))
        group_rows[source.config_name] = row_group_rows(source.rows, source.num_bytes, options.max_group_rows)
        bar.set_postfix_str(f"{source.config_name}/{source.split}")
        files[source.config_name] += write_parquet(store, source, building, options.max_file_bytes,
                                                   group_rows[source.config_name], on_rows=bar.update)
    bar.close()
    grids = copy_grids(store, building)
    data_files = {name: [{"split": split, "path": ShardName.data_files(name, split, ParquetFiles.suffix)}
                         for split in dict.fromkeys(f["split"] for f in files[name])] for name in CONFIG_NAMES}
    sizes = {name: sum(f["bytes"] for f in files[name]) for name in CONFIG_NAMES}
    splits = {name: [{"name": s.split, "num_bytes": s.num_bytes, "num_examples": s.rows}
                     for s in sources if s.config_name == name] for name in CONFIG_NAMES}
    card = render_card(manifest, stats, data_files, sizes, grids, options.repo_id, license, splits=splits)
    building.write_bytes(CARD_NAME, card.encode())
    for name in (*manifest_names(manifest), STATS_NAME):
        building.write_bytes(name, store.folder.read_bytes(name))
    write_checksums(building, [f for config_files in files.values() for f in config_files])
    building.replace_folder(target)
    return ExportResult(target.root, files, sum(s.num_bytes for s in sources), sum(sizes.values()), group_rows)


def copy_grids(store: OutputStore, building: LocalFolder) -> dict[str, str]:
    """The dataset's sample grids, as they are (augment: the per-blend grid of an augmented dataset)."""
    grids = {}
    for kind in (*GRID_COLUMNS, "augment"):
        png = store.grid(kind)
        if png is not None:
            building.mkdirs(IMAGES_DIR)
            building.write_bytes(grid_path(kind), png)
            grids[kind] = grid_path(kind)
    return grids


def write_checksums(folder: LocalFolder, parquet: list[dict]) -> None:
    """checksums.json: every file of the export with its bytes and sha256 (the Parquet files' hashed as each was
    closed, the small rest now). `verify --checksums` and the push's comparison with the Hub read it. A file of
    its own, not a key in manifest.json: the manifest stays the generator's record of what the data was made
    from, byte for byte the one in OUT."""
    hashed = {f["path"]: {"path": f["path"], "bytes": f["bytes"], "sha256": f["sha256"]} for f in parquet}
    for relative in folder.walk():
        if relative not in hashed:
            hashed[relative] = {"path": relative, "bytes": folder.size(relative), "sha256": folder.sha256(relative)}
    folder.write_json(CHECKSUMS_NAME, {"algorithm": "sha256", "files": sorted(hashed.values(),
                                                                             key=lambda f: f["path"])})


def export_fingerprint(out: Path, options: ExportOptions) -> str:
    """What an export is a function of: the done markers (hashes of the shards' content) and the options."""
    store, digest = OutputStore(out), hashlib.sha256()
    for name in (name for name in store.marker_files() if name.endswith(".json")):
        digest.update(name.encode() + store.marker_bytes(name))
    for name in (MANIFEST_NAME, STATS_NAME):
        digest.update(store.folder.read_bytes(name))
    o = options
    digest.update(json.dumps([o.repo_id, o.license_id, o.license_name, o.license_link, o.max_file_bytes,
                              o.max_group_rows, 2]).encode())
    return digest.hexdigest()


def staged_export(out: Path, options: ExportOptions, log: Callable[[str], None] = print) -> Path:
    """The export for a push lives in OUT/.fgbg/hub; a rerun (e.g. after an interrupted upload) reuses it when
    nothing changed, so resuming does not convert again."""
    store = OutputStore(out)
    folder = store.hub_folder
    check_repo_id(options.repo_id)
    find_sources(out)
    fingerprint = export_fingerprint(out, options)
    if folder.is_dir() and (store.hub_record() or {}).get("fingerprint") == fingerprint:
        changed = export_problems(folder.root)
        if not changed:
            log(f"reusing the Parquet export in {folder.root}")
            return folder.root
        log(f"the Parquet export in {folder.root} changed since it was written ({changed[0]}); exporting again")
    store.write_hub_record(None)
    result = export(out, folder.root, options)
    log(export_summary(result))
    store.write_hub_record({"fingerprint": fingerprint})
    return folder.root


def export_problems(folder: Path) -> list[str]:
    """Files of an export that no longer match checksums.json (or the lack of it)."""
    from builder.verify.checksums import checksum_problems

    export = open_folder(folder)
    if not export.is_file(CHECKSUMS_NAME):
        return [f"{CHECKSUMS_NAME} missing"]
    recorded = {entry["path"]: entry for entry in json.loads(export.read_bytes(CHECKSUMS_NAME))["files"]}
    return [f"{where}: {what}" for where, what in checksum_problems(export, recorded)]


def export_summary(result: ExportResult) -> str:
    files = sum(len(f) for f in result.files.values())
    groups = ", ".join(f"{name} {rows}" for name, rows in result.row_group_rows.items())
    return (f"exported {files} Parquet files, {result.parquet_bytes:,} bytes (Arrow shards: {result.arrow_bytes:,} "
            f"bytes); rows per row group: {groups}; folder: {result.folder}")
