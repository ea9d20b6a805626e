"""What the card and stats.json say about where the cut-outs came from: a COCO file's filters and their counts,
photos with masks, and the cut-outs and rows per category. Nothing for an RGBA folder without categories, so
such a dataset's card and stats.json stay as they were."""

from __future__ import annotations

from collections import Counter

from builder.contract.plan import ShardTask
from builder.contract.settings import Manifest
from builder.rows.sources.coco import counts_text
from builder.store.output import OutputStore

NO_CATEGORY = "(none)"  # the files directly in --fg-dir, beside category sub-folders


def category_counts(store: OutputStore, tasks: list[ShardTask], manifest: Manifest) -> dict[str, dict[str, int]]:
    """Category -> cut-outs and `default` rows (a row counts for its own cut-out, object 1). Only the `category`
    column is read."""
    cutouts = Counter(record.category or NO_CATEGORY for record in manifest.foregrounds)
    rows: Counter = Counter()
    for task in (t for t in tasks if t.config_name == "default"):
        for batch in store.batches(task.name, ["category"]):
            rows.update(name or NO_CATEGORY for name in batch.column("category").to_pylist())
    return {name: {"cutouts": cutouts[name], "rows": rows[name]} for name in sorted(cutouts)}


def source_stats(store: OutputStore, tasks: list[ShardTask], manifest: Manifest) -> dict:
    """stats.json's `source` (kind, and a COCO file's filters and counts) and `categories`, where there are any."""
    stats = {}
    if manifest.source:
        stats["source"] = {key: value for key, value in manifest.source.items() if key != "file"}
    if manifest.with_categories:
        stats["categories"] = category_counts(store, tasks, manifest)
    return stats


def source_lines(manifest: Manifest, stats: dict) -> list[str]:
    """The card's provenance lines about the cut-outs' source and categories."""
    source, lines = manifest.source or {}, []
    if source.get("kind") == "coco":
        file, filters = source["file"], source["filters"]
        categories = ", ".join(filters["categories"]) if filters["categories"] else "all"
        lines += [f"- cut-outs: the instances of the COCO file `{file['name']}` (sha256 `{file['sha256']}`): each "
                  "annotation with `iscrowd` 0, its image cropped to its mask's box, alpha 255 on the mask (decoded by "
                  "pycocotools from its polygons or RLE) and 0 elsewhere; `source` is `<file_name>#<annotation id>`",
                  f"  - filters: at least {filters['min_area']:,} mask pixels (`--fg-min-area`), categories: "
                  f"{categories}, instances touching the image border "
                  + ("kept" if filters["keep_truncated"] else "left out") + f"; {counts_text(source['counts'])}"]
    elif source.get("kind") == "masks":
        lines.append("- cut-outs: photos of `--fg-dir`, each with the mask of `--fg-mask-dir` of the same file stem "
                     "as its alpha, cropped to the mask's box (the masks' hashes are in manifest.json)")
    if manifest.with_categories:
        origin = "the COCO file's" if source.get("kind") == "coco" else "the names of `--fg-dir`'s sub-folders"
        lines += [f"- categories ({origin}; `category` in `foregrounds`, `default` and each `objects` entry; a "
                  "row counts for its own cut-out):", "", "  | category | cut-outs | rows |",
                  "  | --- | ---: | ---: |"]
        lines += [f"  | {name} | {n['cutouts']:,} | {n['rows']:,} |" for name, n in stats["categories"].items()]
        lines.append("")
    return lines
