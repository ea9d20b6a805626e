"""The Hub layout of a finished dataset (Parquet shards, card, sample grids, checksums) in a folder: written by
`--export-only DIR`, or staged in OUT/.fgbg/hub for an upload (builder.publish.upload), reused while nothing changed."""

from __future__ import annotations

import hashlib
import json
import shutil
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
from builder.run.shards import (CHECKSUMS_NAME, MANIFEST_NAME, OutputStore, atomic_write_json, file_sha256,
                                read_shard_batches, read_shard_schema)

DEFAULT_MAX_FILE_BYTES = 500 * 1000**2  # datasets' MAX_SHARD_SIZE: "a few hundred MB" per Parquet file
DEFAULT_ROW_GROUP_ROWS = 100  # small groups: cheap for readers without the page index (README, Publishing)
# everything an export folder holds; manifest.json lets scripts/verify.py check the export itself
EXPORT_NAMES = ("README.md", MANIFEST_NAME, CHECKSUMS_NAME, "stats.json", "data", "images")


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
    paths: tuple[Path, ...]
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
    out = Path(out)
    if not out.is_dir():
        raise UsageError([f"{out} is not a folder; give the --output-dir of scripts/generate.py"])
    store = OutputStore(out)
    problems = [f"missing {name} (the generation has not finished: rerun scripts/generate.py with the same "
                "settings)" for name in (MANIFEST_NAME, "stats.json", "README.md") if not (out / name).is_file()]
    sources = []
    if store.manifest_path.is_file():
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
    return Source(name, split, tuple(store.shard_path(t.name) for t in tasks), sum(m.rows for m in markers),
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


def write_parquet(source: Source, dest: Path, max_file_bytes: int, group_rows: int,
                  on_rows: Callable[[int], None] = lambda n: None) -> list[dict]:
    """One config/split as `<split>-0000i-of-0000n.parquet` files of at most about `max_file_bytes`, with
    datasets' Parquet options (images stored uncompressed PLAIN, content-defined chunking so a re-upload of
    regenerated data deduplicates), the page index, and the HF features in the schema metadata."""
    schema = read_shard_schema(source.paths[0])
    options = get_parquet_column_options(Features.from_arrow_schema(schema), schema)  # the shard's own features
    parts: list[dict] = []
    writer = sink = None

    def close():
        writer.close()
        sink.close()
        tmp = Path(parts[-1]["tmp"])
        parts[-1].update(bytes=tmp.stat().st_size, sha256=file_sha256(tmp))  # from the page cache, just written

    batches = (batch for path in source.paths for batch in read_shard_batches(path))
    for table in rebatch(batches, group_rows):
        if writer is None:
            tmp = dest / f".{source.split}-{len(parts):05d}.parquet.tmp"
            parts.append({"tmp": tmp, "rows": 0, "row_groups": []})
            sink = pa.OSFile(str(tmp), "wb")
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
        Path(part["tmp"]).replace(dest / name.file_name("parquet"))
        files.append({"path": name.relative_path("parquet"), "split": source.split,
                      "rows": part["rows"], "bytes": part["bytes"], "sha256": part["sha256"],
                      "row_groups": part["row_groups"]})
    return files


def export(out: Path, folder: Path, options: ExportOptions, progress: bool = True) -> ExportResult:
    """Write the Hub layout of the dataset in `out` into `folder` (built beside it, then renamed into place):
    data/<config>/<split>-*.parquet, images/<kind>.png and a README.md whose YAML points at them."""
    out, folder = Path(out), Path(folder)
    check_repo_id(options.repo_id)
    sources = find_sources(out)
    manifest = OutputStore(out).read_manifest()
    stats = json.loads((out / "stats.json").read_text())
    license = license_terms(resolve_license(manifest.model, options.license_id), options.license_name,
                            options.license_link, options.repo_id)
    inside_out = folder.resolve() == out.resolve() or out.resolve() in folder.resolve().parents
    if inside_out and folder.resolve().parent != OutputStore(out).state_dir.resolve():  # OUT/.fgbg/hub is ours
        raise UsageError([f"export folder {folder} must not be the dataset folder or inside it (load_dataset on "
                          "the dataset folder would read it too)"])
    if folder.exists() and (not folder.is_dir() or any(p.name not in EXPORT_NAMES for p in folder.iterdir())):
        raise UsageError([f"export folder {folder} holds other files; give a new or empty folder (or a "
                          "previous export, which is replaced)"])
    building = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(building, ignore_errors=True)
    bar = tqdm(total=sum(s.rows for s in sources), unit="row", desc="parquet", disable=not progress,
               dynamic_ncols=True)
    files: dict[str, list[dict]] = {name: [] for name in CONFIG_NAMES}
    group_rows = {}
    for source in sources:
        dest = building / "data" / source.config_name
        dest.mkdir(parents=True, exist_ok=True)
        group_rows[source.config_name] = row_group_rows(source.rows, source.num_bytes, options.max_group_rows)
        bar.set_postfix_str(f"{source.config_name}/{source.split}")
        files[source.config_name] += write_parquet(source, dest, options.max_file_bytes,
                                                   group_rows[source.config_name], on_rows=bar.update)
    bar.close()
    grids = {}
    for kind in (*GRID_COLUMNS, "augment"):  # augment: the per-blend grid of an augmented dataset
        grid = out / "images" / f"{kind}.png"
        if grid.is_file():
            (building / "images").mkdir(exist_ok=True)
            shutil.copyfile(grid, building / "images" / grid.name)
            grids[kind] = f"images/{grid.name}"
    data_files = {name: [{"split": split, "path": ShardName.data_files(name, split, "parquet")}
                         for split in dict.fromkeys(f["split"] for f in files[name])] for name in CONFIG_NAMES}
    sizes = {name: sum(f["bytes"] for f in files[name]) for name in CONFIG_NAMES}
    splits = {name: [{"name": s.split, "num_bytes": s.num_bytes, "num_examples": s.rows}
                     for s in sources if s.config_name == name] for name in CONFIG_NAMES}
    card = render_card(manifest, stats, data_files, sizes, grids, options.repo_id, license, splits=splits)
    (building / "README.md").write_text(card)
    for name in (MANIFEST_NAME, "stats.json"):
        shutil.copyfile(out / name, building / name)
    write_checksums(building, [f for config_files in files.values() for f in config_files])
    if folder.exists():
        shutil.rmtree(folder)
    building.replace(folder)
    return ExportResult(folder, files, sum(s.num_bytes for s in sources), sum(sizes.values()), group_rows)


def write_checksums(folder: Path, parquet: list[dict]) -> None:
    """checksums.json: every file of the export with its bytes and sha256 (the Parquet files' hashed as each was
    closed, the small rest now). `verify --checksums` and the push's comparison with the Hub read it. A file of
    its own, not a key in manifest.json: the manifest stays the generator's record of what the data was made
    from, byte for byte the one in OUT."""
    hashed = {f["path"]: {"path": f["path"], "bytes": f["bytes"], "sha256": f["sha256"]} for f in parquet}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative not in hashed:
            hashed[relative] = {"path": relative, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    atomic_write_json(folder / CHECKSUMS_NAME, {"algorithm": "sha256", "files": sorted(hashed.values(),
                                                                                      key=lambda f: f["path"])})


def export_fingerprint(out: Path, options: ExportOptions) -> str:
    """What an export is a function of: the done markers (hashes of the shards' content) and the options."""
    digest = hashlib.sha256()
    for marker in sorted(OutputStore(out).done_dir.glob("*.json")):
        digest.update(marker.name.encode() + marker.read_bytes())
    for name in (MANIFEST_NAME, "stats.json"):
        digest.update((Path(out) / name).read_bytes())
    o = options
    digest.update(json.dumps([o.repo_id, o.license_id, o.license_name, o.license_link, o.max_file_bytes,
                              o.max_group_rows, 2]).encode())
    return digest.hexdigest()


def staged_export(out: Path, options: ExportOptions, log: Callable[[str], None] = print) -> Path:
    """The export for a push lives in OUT/.fgbg/hub; a rerun (e.g. after an interrupted upload) reuses it when
    nothing changed, so resuming does not convert again."""
    out = Path(out)
    store = OutputStore(out)
    folder, record = store.state_dir / "hub", store.state_dir / "hub.json"
    check_repo_id(options.repo_id)
    find_sources(out)
    fingerprint = export_fingerprint(out, options)
    if folder.is_dir() and record.is_file() and json.loads(record.read_text()).get("fingerprint") == fingerprint:
        changed = export_problems(folder)
        if not changed:
            log(f"reusing the Parquet export in {folder}")
            return folder
        log(f"the Parquet export in {folder} changed since it was written ({changed[0]}); exporting again")
    record.unlink(missing_ok=True)
    result = export(out, folder, options)
    log(export_summary(result))
    atomic_write_json(record, {"fingerprint": fingerprint})
    return folder


def export_problems(folder: Path) -> list[str]:
    """Files of an export that no longer match checksums.json (or the lack of it)."""
    from builder.verify.checksums import checksum_problems

    path = folder / CHECKSUMS_NAME
    if not path.is_file():
        return [f"{CHECKSUMS_NAME} missing"]
    recorded = {entry["path"]: entry for entry in json.loads(path.read_text())["files"]}
    return [f"{where}: {what}" for where, what in checksum_problems(folder, recorded)]


def export_summary(result: ExportResult) -> str:
    files = sum(len(f) for f in result.files.values())
    groups = ", ".join(f"{name} {rows}" for name, rows in result.row_group_rows.items())
    return (f"exported {files} Parquet files, {result.parquet_bytes:,} bytes (Arrow shards: {result.arrow_bytes:,} "
            f"bytes); rows per row group: {groups}; folder: {result.folder}")
