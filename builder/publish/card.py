"""Finishing a dataset: merged statistics, sample grids and the dataset card (README.md)."""

from __future__ import annotations

import colorsys
import io
import string
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from builder.contract import given_depth as given
from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.depth_storage import depth_storage
from builder.contract.plan import DRAW_STREAM, TRAIN, ShardName, ShardTask
from builder.contract.schema import CONFIG_NAMES, GRID_COLUMNS, SCHEMAS, features
from builder.contract.settings import Manifest
from builder.publish.license import License, license_for_model
from builder.publish.source_card import source_lines, source_stats
from builder.rows import geometry
from builder.rows.stats import merge_all
from builder.store.manifest import has_side_file
from builder.store.marker import DoneMarker
from builder.store.names import INPUTS_NAME
from builder.store.output import OutputStore

TEMPLATE = Path(__file__).resolve().parents[2] / "dataset_card.md"
GRID_COUNT = 8
def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000


# huggingface_hub's DatasetCardData.size_categories, in order; n counts the default config's rows
SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
                   "1B<n<10B", "10B<n<100B", "100B<n<1T")


def size_category(n: int) -> str:
    """n < 1,000 is n<1K, 1,000 <= n < 10,000 is 1K<n<10K, ...; 10**12 and more is n>1T."""
    return next((label for power, label in enumerate(SIZE_CATEGORIES, start=3) if n < 10**power), "n>1T")


def _read_spread_images(store: OutputStore, tasks, column: str, count: int) -> list[Image.Image]:
    """`count` evenly spaced rows of one config, so the grid shows different backgrounds and cut-outs.
    Shards are streamed batch by batch and only those holding a chosen row are opened."""
    total = tasks[-1].stop
    wanted = sorted({round(j * (total - 1) / max(1, count - 1)) for j in range(min(count, total))})
    images = []
    for task in tasks:
        rows = [i - task.start for i in wanted if task.start <= i < task.stop]
        if not rows:
            continue
        offset = 0
        for batch in store.batches(task.name, [column]):
            cells = batch.column(column)
            for row in rows:
                if offset <= row < offset + batch.num_rows:
                    images.append(Image.open(io.BytesIO(cells[row - offset]["bytes"].as_py())))
            offset += batch.num_rows
            if offset > rows[-1]:
                break
    return images


def _tile(image: Image.Image, side: int) -> Image.Image:
    """Grid cell: 16-bit depth shown as 8-bit, RGBA on a checkerboard, everything fitted into side x side."""
    if image.mode.startswith("I"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    if image.mode == "RGBA":
        yy, xx = np.mgrid[:image.height, :image.width]
        board = np.where(((yy // 8 + xx // 8) % 2)[..., None] == 0, 200, 150).astype(np.uint8).repeat(3, axis=2)
        base = Image.fromarray(board, "RGB")
        base.paste(image, mask=image.getchannel("A"))
        image = base
    image = image.convert("RGB")
    image.thumbnail((side, side))
    cell = Image.new("RGB", (side, side), (255, 255, 255))
    cell.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return cell


def _read_blend_examples(store: OutputStore, tasks, modes: list[str]) -> list[Image.Image]:
    """The first composite of each edge blend, then their alphas (augmented datasets: the `augment` grid).
    Shards are read only until every mode has been seen."""
    found: dict[str, list[Image.Image]] = {}
    for task in (t for t in tasks if t.config_name == "default"):
        for batch in store.batches(task.name, ["blend", "fg_bg", "alpha"]):
            for j, blend in enumerate(batch.column("blend").to_pylist()):
                if blend not in found:
                    found[blend] = [Image.open(io.BytesIO(batch.column(c)[j]["bytes"].as_py()))
                                    for c in ("fg_bg", "alpha")]
            if len(found) == len(modes):
                break
        if len(found) == len(modes):
            break
    ordered = [found[mode] for mode in modes if mode in found]
    return [pair[0] for pair in ordered] + [pair[1] for pair in ordered]


def _save_grid(store: OutputStore, kind: str, images: list[Image.Image], side: int, columns: int) -> str:
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * side, rows * side), (255, 255, 255))
    for n, image in enumerate(images):
        grid.paste(_tile(image, side), ((n % columns) * side, (n // columns) * side))
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    return store.write_grid(kind, buffer.getvalue())


def write_grids(store: OutputStore, tasks, side: int, blend_modes: list[str] | None = None) -> dict[str, str]:
    """One PNG per kind: rows spread over that config, side by side (and, augmented, one composite per edge
    blend over its alpha). Returns kind -> relative path."""
    grids = {}
    for kind, (config_name, column) in GRID_COLUMNS.items():
        config_tasks = [t for t in tasks if t.config_name == config_name]
        try:
            images = _read_spread_images(store, config_tasks, column, GRID_COUNT)
        except KeyError:  # --no-depth: no depth column; --augment none: no alpha column
            continue
        grids[kind] = _save_grid(store, kind, images, side, min(len(images), 4))
    if blend_modes:
        images = _read_blend_examples(store, tasks, blend_modes)
        grids["augment"] = _save_grid(store, "augment", images, side, len(images) // 2)
    if (instances := _instance_grid(store, tasks, side)) is not None:
        grids["instances"] = instances
    if "amodal_mask" in grids:  # ground mode: each composite beside its visible and its amodal mask
        default = [t for t in tasks if t.config_name == "default"]
        columns = [_read_spread_images(store, default, column, 4) for column in ("fg_bg", "mask", "amodal_mask")]
        grids["occlusion"] = _save_grid(store, "occlusion", [image for row in zip(*columns) for image in row], side, 3)
    return grids


def coloured_instances(image: Image.Image) -> Image.Image:
    """An instance mask in colour: the background black, object k in the k-th hue of a golden-ratio sequence (so
    neighbouring ids differ clearly)."""
    palette = np.array([(0, 0, 0)] + [[round(255 * c) for c in colorsys.hsv_to_rgb((k * 0.618034) % 1, 0.75, 1.0)]
                                      for k in range(1, 256)], dtype=np.uint8)
    return Image.fromarray(palette[np.asarray(image)], "RGB")


def _instance_grid(store: OutputStore, tasks, side: int) -> str | None:
    """--objects above 1: composites, each beside its instance mask in colour (None without instance masks)."""
    default = [t for t in tasks if t.config_name == "default"]
    try:
        masks = _read_spread_images(store, default, "instance_mask", 8)
    except KeyError:
        return None
    composites = _read_spread_images(store, default, "fg_bg", 8)
    return _save_grid(store, "instances", [image for pair in zip(composites, map(coloured_instances, masks))
                                           for image in pair], side, 4)


def object_counts(store: OutputStore, tasks: list[ShardTask]) -> dict:
    """--objects above 1: rows by their number of objects, redraws, drops and the mean visible fraction of an
    object. Only the small columns are read (memory-mapped shards)."""
    per_row: dict[int, int] = {}
    counts = {"objects": 0, "redrawn": 0, "dropped": 0, "visible_sum": 0.0}
    for task in (t for t in tasks if t.config_name == "default"):
        for batch in store.batches(task.name, ["objects", "objects_redrawn", "objects_dropped"]):
            objects = batch.column("objects")
            for n in objects.value_lengths().to_numpy():
                per_row[int(n)] = per_row.get(int(n), 0) + 1
            occlusion = objects.flatten().field("occlusion").to_numpy().astype(np.float64)
            counts["objects"] += len(occlusion)
            counts["visible_sum"] += float((1 - occlusion).sum())
            counts["redrawn"] += int(batch.column("objects_redrawn").to_numpy().sum())
            counts["dropped"] += int(batch.column("objects_dropped").to_numpy().sum())
    rows = sum(per_row.values())
    return {"rows_by_objects": {str(n): per_row[n] for n in sorted(per_row)}, "objects": counts["objects"],
            "objects_per_row": round(counts["objects"] / rows, 6) if rows else 0.0,
            "mean_visible": round(counts["visible_sum"] / counts["objects"], 6) if counts["objects"] else 0.0,
            "redrawn": counts["redrawn"], "dropped": counts["dropped"]}


def objects_lines(settings, stats: dict) -> list[str]:
    """What `--objects` did; nothing with one object per composite (the card stays as it was)."""
    if not settings.with_objects:
        return []
    counts, low_high = stats.get("objects", {}), settings.object_range
    by_count = ", ".join(f"{n}: {rows:,}" for n, rows in counts.get("rows_by_objects", {}).items())
    order = "back to front by foot disparity" if settings.with_ground else "in drawing order"
    return [
        f"- objects: {low_high[0]} to {low_high[1]} cut-outs per composite; object 1 is the row's own (the "
        "top-level columns describe it), the others are drawn with `numpy.random.default_rng([seed, i, 3])` from "
        f"the row's split's cut-outs (distinct) and pasted {order}; `mask` is the union of the visible objects, "
        "`instance_mask` is k on the visible pixels of the k-th entry of `objects`",
        f"  - rows by number of objects: {by_count}; {counts.get('objects_per_row', 0):.2f} objects per row, mean "
        f"visible fraction of an object {counts.get('mean_visible', 0):.3f}; an object leaving another (or itself) "
        f"less than {geometry.MIN_VISIBLE:.0%} visible is redrawn (at most {geometry.MAX_TRIES} draws), then "
        f"dropped: {counts.get('redrawn', 0):,} redraws, {counts.get('dropped', 0):,} drops",
    ] + ([
        "  - with `--augment`: the background is perturbed once per composite (the row's parameters, object 1's); "
        "each further object draws its own cut-out parameters from the same stream right after its placement, and "
        "its `objects` entry holds them (`fg_angle` ... `shadow_sigma`); visibility follows each object's final "
        "(rotated, blended) alpha; every shadow falls on the background, none on a cut-out; `alpha` is the "
        "objects' final alphas, less what scenery hides, composed back to front",
    ] if settings.with_augment else [])


def _tally(markers: list[DoneMarker]) -> dict:
    kinds = merge_all([m.stats for m in markers])
    rows = {name: sum(m.rows for m in markers if m.name.config_name == name) for name in CONFIG_NAMES}
    num_bytes = {name: sum(m.file_bytes for m in markers if m.name.config_name == name) for name in CONFIG_NAMES}
    shards = {name: sum(1 for m in markers if m.name.config_name == name) for name in CONFIG_NAMES}
    return {"rows": rows, "shards": shards, "num_bytes": num_bytes,
            "kinds": {kind: kinds[kind].to_json() for kind in sorted(kinds)}}


def collect_stats(markers: list[DoneMarker]) -> dict:
    """Totals over the dataset and, where it has a validation split, the same per split: normalise inputs with
    the train split's mean and std."""
    totals = _tally(markers)
    splits = list(dict.fromkeys(m.name.split for m in markers))
    if len(splits) == 1:
        return totals
    return {**totals, "normalize_with": "train",
            "splits": {split: _tally([m for m in markers if m.name.split == split]) for split in splits}}


def placement_counts(store: OutputStore, tasks: list[ShardTask], mode: str) -> dict:
    """A standing rule (`mode`): rows it stood on ground and rows placed uniformly (no feasible foot), and how much
    was hidden. Only the small columns are touched: the shards are memory-mapped, the images never read."""
    counts = {mode: 0, "uniform": 0, "occluded": 0, "occlusion_sum": 0.0}
    for task in tasks:
        if task.config_name != "default":
            continue
        for batch in store.batches(task.name, ["placement_mode", "occlusion"]):
            modes = batch.column("placement_mode").to_pylist()
            occlusion = batch.column("occlusion").to_numpy()
            counts[mode] += modes.count(mode)
            counts["uniform"] += modes.count("uniform")
            counts["occluded"] += int((occlusion > 0).sum())
            counts["occlusion_sum"] += float(occlusion.astype(np.float64).sum())
    rows = counts[mode] + counts["uniform"]
    return {mode: counts[mode], "uniform": counts["uniform"], "occluded": counts["occluded"],
            "mean_occlusion": round(counts["occlusion_sum"] / rows, 6) if rows else 0.0}


def ground_lines(settings, stats: dict) -> list[str]:
    """What a standing placement rule (`--placement-mode ground` or `physical`) did; nothing in uniform mode (the card
    stays as it was)."""
    if not settings.with_ground:
        return []
    counts, g, mode = stats.get("placement", {}), geometry, settings.placement_mode
    physical = mode == "physical"
    focal = (f"f_R = {settings.focal_px:g} px (`--focal-px`) * R / the original background's shorter side "
             "(manifest.json `inputs.physical`)" if settings.focal_px is not None else
             f"f_R the background's `{FOCAL_COLUMN}` in `backgrounds`, from the depth model's predicted field of view "
             "(no `--focal-px`; manifest.json `inputs.physical.focal_from`)")
    size = (f"`scale` follows physics: the cut-out's opaque part (alpha >= {settings.mask_threshold}) is f_R * "
            "`height_m` / Z_foot pixels tall, with `height_m` its real height (`--fg-heights`), Z_foot the metric "
            f"depth at the foot in metres and {focal}; feet where that size falls outside "
            f"[{settings.scale_min}, {settings.scale_max}] are never drawn" if physical else
            f"`scale` maps the background's ground disparity range (percentiles {g.SPAN_PERCENTILES[0]:g}-"
            f"{g.SPAN_PERCENTILES[1]:g}) linearly onto [{settings.scale_min}, {settings.scale_max}]: the nearest "
            "ground gets the largest size")
    return [
        f"- placement: `--placement-mode {mode}`: each cut-out stands on the background's ground, from the "
        "background's disparity map (the depth model's map as stored in `backgrounds`, or the maps given with "
        "`--bg-depth-dir`, whose hashes are in manifest.json). Ground is where disparity rises steadily downward "
        f"(over {g.window(settings.resolution)} rows above and below, by more than {g.MIN_SLOPE} of the map's span "
        f"per R rows on both sides, the two rises within a factor {g.STEADY_RATIO:g}): floors, not sky, walls or "
        "the front faces of objects",
        "  - the foot (`foot_x`, `foot_y`, the cut-out's bottom centre) is drawn uniformly from the ground pixels "
        f"where the cut-out fits the frame, with `numpy.random.default_rng([seed, i, 2])`; {size}",
        f"  - occlusion: background pixels nearer than the foot by more than {g.OCCLUSION_MARGIN:g} of the map's "
        "span hide the cut-out; `mask` is the visible part, `amodal_mask` the whole footprint, `occlusion` = 1 - "
        f"visible / footprint area; a cut-out less than {g.MIN_VISIBLE:.0%} visible is redrawn (at most "
        f"{g.MAX_TRIES} draws, the most visible kept)",
        f"  - backgrounds with less than {g.MIN_GROUND_FRACTION:.0%} ground "
        + ("(and cut-outs with no foot in the scale range) " if physical else "")
        + "place their rows uniformly (`placement_mode` = uniform, nothing hidden): "
        f"{counts.get(mode, 0):,} rows on ground, {counts.get('uniform', 0):,} uniform; "
        f"{counts.get('occluded', 0):,} rows partly hidden, mean occlusion {counts.get('mean_occlusion', 0):.3f}",
    ]


def given_depth_lines(manifest: Manifest) -> list[str]:
    """Where a dataset placed by --bg-depth-dir maps keeps them; nothing otherwise (the card stays as it was)."""
    if not manifest.stores_given_depth:
        return []
    kind = ("disparity (larger is nearer)" if manifest.settings.bg_depth_kind == "disparity" else
            "depth (distance" + ("; metres" if manifest.settings.placement_mode == "physical" else "") + ")")
    return [f"  - the `--bg-depth-dir` maps, {kind}, cropped and resized to R x R as their backgrounds, are stored "
            f"in `backgrounds` and placement read them from there: {given.READING}"]


def split_sizes(stats: dict) -> dict[str, list[dict]]:
    """config -> [{name, num_bytes, num_examples}] for dataset_info, one per split."""
    parts = stats.get("splits") or {"train": stats}
    return {name: [{"name": split, "num_bytes": part["num_bytes"][name], "num_examples": part["rows"][name]}
                   for split, part in parts.items()] for name in CONFIG_NAMES}


def stats_table(kinds: dict) -> str:
    lines = ["| kind | images | encoded bytes | channels | mean | std |", "| --- | ---: | ---: | --- | --- | --- |"]
    channel_names = {1: "L", 3: "RGB", 4: "RGBA"}
    for kind, s in kinds.items():
        mean = ", ".join(f"{v:.4f}" for v in s["mean"])
        std = ", ".join(f"{v:.4f}" for v in s["std"])
        lines.append(f"| {kind} | {s['count']:,} | {s['encoded_bytes']:,} | {channel_names[len(s['mean'])]} | "
                     f"{mean} | {std} |")
    return "\n".join(lines)


def card_yaml(manifest: Manifest, stats: dict, data_files: dict[str, list[dict]], sizes: dict[str, int],
              license: License | None, splits: dict[str, list[dict]] | None = None) -> str:
    """YAML header: configs with their data files, dataset_info with features and split sizes (`splits`:
    config -> [{name, num_bytes, num_examples}]; default: from `stats`). No `license` key while the license is
    unknown (a local card): `other` without a name and link is not a valid one."""
    with_depth = manifest.settings.with_depth
    splits = splits or split_sizes(stats)
    info = []
    for name in CONFIG_NAMES:
        info.append({"config_name": name,
                     "features": features(name, **manifest.column_groups)._to_yaml_list(),
                     "splits": splits[name],
                     "download_size": sizes[name], "dataset_size": stats["num_bytes"][name]})
    header = {
        **(license.yaml() if license else {}),
        "pretty_name": "fgbg-depth",
        "task_categories": ["depth-estimation", "image-segmentation"] if with_depth else ["image-segmentation"],
        "size_categories": [size_category(stats["rows"]["default"])],
        "tags": ["synthetic", "compositing", *(["depth"] if with_depth else []), "mask", "foreground-background",
                 "fgbg-depth"],
        **({"depth_kind": manifest.settings.kind.label} if with_depth else {}),
        "configs": [{"config_name": name, "data_files": data_files[name], **({"default": True} if name == "default"
                                                                               else {})} for name in CONFIG_NAMES],
        "dataset_info": info,
    }
    return yaml.safe_dump(header, sort_keys=False, width=120).strip()


def provenance(manifest: Manifest, stats: dict) -> str:
    settings, model = manifest.settings, manifest.model
    lines = [f"- resolution: {settings.resolution} x {settings.resolution} (backgrounds center-cropped "
             "and resized with Lanczos)",
             sampling_line(settings),
             f"- foreground scale (longer side / R): uniform in [{settings.scale_min}, {settings.scale_max}],"
             " resized bilinear in premultiplied alpha, flipped horizontally for `flip=True`, placed fully inside",
             f"- mask threshold: alpha >= {settings.mask_threshold}; JPEG quality {settings.jpeg_quality}",
             f"- shard size: {settings.shard_size} rows"]
    lines += augmentation_lines(settings)
    lines += ground_lines(settings, stats) + given_depth_lines(manifest)
    lines += objects_lines(settings, stats)
    lines += source_lines(manifest, stats)
    if model:
        lines.append(f"- depth: `{model.id}` (revision `{model.revision}`, dtype {model.dtype}), "
                     f"{settings.kind.label} ({settings.kind.meaning}); input {settings.depth_input_size} x "
                     f"{settings.depth_input_size} (resized, padded and normalised as its image processor does), "
                     "prediction brought back to R x R as its post-processing does, then min-max scaled per image to "
                     f"a {settings.depth_bits}-bit PNG")
    else:
        lines.append("- depth: none (generated with `--no-depth`)")
    versions = ", ".join(f"{k} {v}" for k, v in manifest.versions.items())
    lines.append(f"- libraries: {versions}")
    return "\n".join(lines + input_file_lines(manifest))


def input_file_lines(manifest: Manifest) -> list[str]:
    """Each input file with its sha256, or, for a dataset of more inputs than manifest.json keeps inline, where
    they are listed (its side file)."""
    depth_maps = (("background depth maps", manifest.bg_depths),) if manifest.bg_depths is not None else ()
    roles = (("backgrounds", manifest.backgrounds), ("foregrounds", manifest.foregrounds), *depth_maps)
    if has_side_file(manifest):
        counts = ", ".join(f"{len(files):,} {role}" for role, files in roles)
        return [f"- input files ({counts}): names, sha256 and sizes in `{INPUTS_NAME}`"]
    lines = []
    for role, files in roles:
        lines.append(f"\n<details><summary>{len(files)} {role} (file, sha256)</summary>\n")
        lines += [f"- `{f.name}` `{f.sha256}`" for f in files]
        lines.append("\n</details>")
    return lines


def sampling_line(settings) -> str:
    """How the samples were chosen: the full product's placements, or rows drawn (--rows)."""
    if settings.rows is None:
        return (f"- placements per foreground and flip: {settings.placements}; seed: {settings.seed} "
                "(sample i draws its scale and position from `numpy.random.default_rng([seed, i])`)")
    validation = f", {settings.validation_rows:,} validation" if settings.validation_rows else ""
    return (f"- rows drawn: {settings.rows:,} train{validation} (`--rows`); seed: {settings.seed} (sample i draws "
            "its background, cut-out and flip uniformly among its split's inputs from "
            f"`numpy.random.default_rng([seed, i, {DRAW_STREAM}])`, and its scale and position from "
            "`numpy.random.default_rng([seed, i])`)")


def sampling_summary(manifest: Manifest) -> str:
    """The card's first line on how many samples: the product's factors, or the rows drawn."""
    settings, n_bg, n_fg = manifest.settings, len(manifest.backgrounds), len(manifest.foregrounds)
    if settings.rows is None:
        return f"{n_bg} x {n_fg} x 2 (flip) x {settings.placements} placements"
    validation = f", `--validation-rows {settings.validation_rows}`" if settings.validation_rows else ""
    return f"rows drawn at random, each one background, one cut-out and a flip (`--rows {settings.rows}`{validation})"


def configs_table(manifest: Manifest, stats: dict) -> str:
    """Each config's rows and columns, from the schema (a new column shows up here by itself)."""
    lines = ["| config | rows | columns |", "| --- | ---: | --- |"]
    for schema in SCHEMAS:
        columns = ", ".join(f"`{c.name}`" + (f" ({c.image.format} {c.image.mode})" if c.image else "")
                            for c in schema.active_columns(**manifest.column_groups))
        lines.append(f"| `{schema.name}` | {stats['rows'][schema.name]:,} | {columns} |")
    return "\n".join(lines)


def splits_section(manifest: Manifest, stats: dict) -> str:
    """The split rule, its counts and the held-out inputs; or how to get a validation split."""
    settings = manifest.settings
    plan = manifest.split_plan()
    if len(plan.splits) == 1:
        return ("One `train` split with every sample. A validation split that shares no background or cut-out "
                "with train is made with `--validation-backgrounds N` / `--validation-foregrounds M`.")
    membership = ("`train` has the pairs of a kept background and a kept cut-out; `validation` the pairs of a "
                  "held-out background (or any background, if none is held out) and a held-out cut-out (or any, if "
                  "none is held out); every other pair is dropped, never generated." if plan.drawn is None else
                  "each `train` row draws a kept background and a kept cut-out; each `validation` row a held-out "
                  "background (or any background, if none is held out) and a held-out cut-out (or any, if none is "
                  "held out).")
    lines = ["`validation` holds out whole backgrounds and cut-outs, so validation scores measure generalisation, "
             f"not memorisation: {membership} The held-out inputs were chosen from seed {settings.seed} by a seeded "
             "permutation, not by file order. The `backgrounds` and `foregrounds` configs split the same way.", "",
             "| split | samples | backgrounds | cut-outs |", "| --- | ---: | ---: | ---: |"]
    for split in plan.splits:
        rows = stats["splits"][split]["rows"]
        lines.append(f"| {split} | {rows['default']:,} | {rows['backgrounds']:,} | {rows['foregrounds']:,} |")
    if plan.drawn is None:
        lines += ["", f"Dropped pairs: {plan.dropped:,} samples of the full {len(plan.space):,} were not generated.",
                  ""]
    else:
        lines += ["", f"Drawn rows: `sample_id` 0 to {plan.drawn.train - 1:,} are train, {plan.drawn.train:,} to "
                      f"{len(plan.drawn) - 1:,} validation.", ""]
    for role, names in (manifest.held_out or {}).items():
        lines.append(f"Held-out {role}: " + (", ".join(f"`{n}`" for n in names) or "none") + ".")
    return "\n".join(lines)


def statistics_tables(stats: dict) -> str:
    if "splits" not in stats:
        return stats_table(stats["kinds"])
    parts = [f"**{split}**" + (" (normalise with these mean and std)" if split == TRAIN else "") + "\n\n"
             + stats_table(part["kinds"]) for split, part in stats["splits"].items()]
    return "\n\n".join(parts + ["**all splits**\n\n" + stats_table(stats["kinds"])])


def license_text(manifest: Manifest, license: License | None) -> str:
    model = manifest.model
    if license is None:
        return ("Not determined automatically: it depends on the inputs" +
                (f" and on the depth model `{model.id}`" if model else "") + ". Set it before publishing.")
    if license.id == "other":
        return f"`other`: **{license.name}**, see [{license.link}]({license.link})."
    if license.id == license_for_model(model):
        return f"`{license.id}`, following the depth model `{model.id}`."
    return f"`{license.id}`."


def augmentation_lines(settings) -> list[str]:
    """What `--augment` did, with each part's range; nothing for `--augment none` (the card stays as it was)."""
    if not settings.with_augment:
        return []
    s = settings
    return [
        f"- augmentation: `--augment {s.augment}`; every sample draws its parameters from "
        "`numpy.random.default_rng([seed, i, 1])` (placements are unchanged) and stores them in its row: "
        "`bg_brightness` ... `shadow_sigma`; " + ("`alpha` (PNG L): see objects below" if s.with_objects else
                                                 f"`alpha` (PNG L) is the final placed alpha, `mask` = alpha >= "
                                                 f"{s.mask_threshold}"),
        f"  - background, in the composite only (the `backgrounds` config keeps the clean crop): shift "
        f"`bg_dx`, `bg_dy` in [-{s.bg_shift}, {s.bg_shift}] px with reflected border; brightness, contrast, "
        f"saturation in [{1 - s.bg_jitter:g}, {1 + s.bg_jitter:g}], hue shift in +-{s.bg_jitter / 10:g} turn; "
        f"box blur radius in [0, {s.bg_blur:g}] px; gaussian noise sigma in [0, {s.bg_noise:g}] levels (a "
        "window, at offsets drawn from `noise_seed`, of a fixed N(0, 1) field)",
        f"  - foreground: rotation in +-{s.fg_rotation:g} degrees about its box centre; colour jitter in "
        f"[{1 - s.fg_jitter:g}, {1 + s.fg_jitter:g}] (hue +-{s.fg_jitter / 10:g} turn); luminance harmonised "
        f"toward the background's mean under it by a strength in [0, {s.harmonize:g}]",
        f"  - edge blend per sample (`blend`), one of {s.blend_modes}: alpha (the cut-out's own), hard "
        f"(alpha >= {s.mask_threshold}), feather (alpha blurred by sigma in [0.5, {max(s.feather, 0.5):g}] px, kept "
        f"inside the cut-out), motion (a linear blur of colour and alpha, length in [2, {max(s.motion, 2)}] px)",
        f"  - shadow: the final alpha offset by up to 8% of the cut-out's size, blurred, darkens the background "
        f"by an opacity in [0, {s.shadow:g}]; it is not part of the mask",
    ]


def render_card(manifest: Manifest, stats: dict, data_files: dict[str, list[dict]], sizes: dict[str, int],
                grids: dict[str, str], repo_id: str, license: License | None,
                splits: dict[str, list[dict]] | None = None) -> str:
    """The README.md; its title, intro, tasks and depth sections follow `--no-depth`."""
    settings = manifest.settings
    with_depth = settings.with_depth
    n_bg, n_fg = len(manifest.backgrounds), len(manifest.foregrounds)
    storage = depth_storage(settings.depth_bits)
    peak = storage.peak
    kind = settings.kind
    depth_note = (f"`depth` is {kind.meaning} (`depth_kind: {kind.label}`), resized to R x R and min-max scaled per "
                  f"image to 0..{peak} in {storage.description}, computed in float32; the raw prediction"
                  f"{' in metres' if kind.metric else ''} is `depth_min + png / {peak} * (depth_max - depth_min)` "
                  f"(see Reading depth){'; `depth_min` and `depth_max` are in metres' if kind.metric else ''}."
                  + (f" The model predicts its field of view: `backgrounds` has `{FOCAL_COLUMN}`, the focal length in "
                     "pixels of the R x R background it implies (R / 2 / tan(fov / 2))."
                     if manifest.column_groups["with_field_of_view"] else "")
                  if with_depth else
                  "This dataset was generated without depth (`--no-depth`): it has no depth columns.")
    values = {
        "yaml": card_yaml(manifest, stats, data_files, sizes, license, splits),
        "pretty_name": "fgbg-depth", "n_bg": n_bg, "n_fg": n_fg, "sampling": sampling_summary(manifest),
        "kinds": "composite + mask + depth" if with_depth else "composite + mask",
        "targets": "the pasted foreground's mask and a depth map" if with_depth else "the pasted foreground's mask",
        "n_samples": f"{stats['rows']['default']:,}", "resolution": settings.resolution,
        "configs_table": configs_table(manifest, stats),
        "depth_note": depth_note,
        "grids": "\n\n".join(f"**{kind}**\n\n![{kind}]({path})" for kind, path in grids.items()),
        "stats_table": statistics_tables(stats),
        "splits": splits_section(manifest, stats),
        "data_size": human_bytes(sum(sizes.values())), "data_bytes": f"{sum(sizes.values()):,}",
        "provenance": provenance(manifest, stats), "repo_id": repo_id,
        "depth_loading": f', row["depth"]  # PIL images; depth is mode {storage.mode}' if with_depth else "",
        "depth_reading": f"## Reading depth\n\n{storage.card_reading()}\n" if with_depth else "",
        "license_text": license_text(manifest, license),
    }
    return string.Template(TEMPLATE.read_text()).substitute(values)


def write_card(store: OutputStore, tasks: list[ShardTask]) -> dict:
    """Once every shard is finished (else FgbgError naming the others): stats.json, grids, README.md, all from
    the done markers and the shards. Returns stats.json's content."""
    markers = store.finished_markers(tasks)
    manifest = store.read_manifest()
    stats = collect_stats(markers)
    settings = manifest.settings
    if settings.with_ground:
        stats["placement"] = placement_counts(store, tasks, settings.placement_mode)
    if settings.with_objects:
        stats["objects"] = object_counts(store, tasks)
    stats.update(source_stats(store, tasks, manifest))
    grids = write_grids(store, [t for t in tasks if t.name.split == TRAIN], side=min(settings.resolution, 256),
                        blend_modes=settings.blend_mode_list if settings.with_augment else None)
    splits = list(dict.fromkeys(t.name.split for t in tasks))
    data_files = {name: [{"split": split, "path": ShardName.data_files(name, split, store.format.suffix)}
                         for split in splits] for name in CONFIG_NAMES}
    known = license_for_model(manifest.model)
    card_text = render_card(manifest, stats, data_files, stats["num_bytes"], grids, str(store.root),
                            License(known) if known else None)
    store.write_card(card_text)
    stats = {**stats, "data_bytes": sum(stats["num_bytes"].values())}
    store.write_stats(stats)
    return stats


def finish(store: OutputStore, tasks: list[ShardTask], elapsed: float, resumed_rows: int, processes: int,
           device: str) -> dict:
    """Main process, after every shard is done: stats.json, grids, README.md. Returns the run summary."""
    stats = write_card(store, tasks)
    written = sum(stats["rows"].values()) - resumed_rows
    return {"rows": stats["rows"], "rows_written": written, "data_bytes": stats["data_bytes"],
            "elapsed_s": round(elapsed, 2), "rows_per_s": round(written / elapsed, 1), "processes": processes,
            "device": device, "card": store.card_path()}


def summary_text(summary: dict) -> str:
    rows = ", ".join(f"{name} {n:,}" for name, n in summary["rows"].items())
    return (f"done: {rows} rows; {human_bytes(summary['data_bytes'])} of shards; this run wrote "
            f"{summary['rows_written']:,} rows in {summary['elapsed_s']:.1f} s ({summary['rows_per_s']} rows/s, "
            f"{summary['processes']} process(es) on {summary['device']}); "
            f"card: {summary['card']}")
