"""Section rows: the CPU cost of a `default` row per option, in one process pinned to one core.

Every option (none, realistic, ground, realistic + ground, objects 2-3, realistic + ground + objects 2-3, and ground
with drawn rows: `--rows`, the same sample ids each drawing its own background and cut-out) is timed without depth and with 16-bit depth storage, beside the training loader's decode of a row and the seed-style loop
(the reference that machine speed cancels in), by CPU time, interleaved round by round so that other load on the
machine hits every variant alike; each figure is the median over the rounds. Checked against
benchmarks/budget.json (`over_budget`).

A row here is what a worker does for it: render, encode, exact statistics and, with depth, the copy of the
composite into the model's ring and the depth cell (`builder.run.workers.depth_cell`) of a fixed map: the stand-in
estimator's map of the row's background (`builder.testing.standin_depth`), made before timing. Ground placement
stands on the same maps. The model runs on the GPU and is not timed; neither is the Arrow write. The seed-style
reference is `builder.bench.composite.seed_style_sample` (re-open, paste, two optimised JPEGs) without its zip."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from builder.bench.common import RESOLUTION, ROOT, median

DRAWN = "drawn"  # an option's rows drawn (--rows): a new background and cut-out nearly every row
OPTIONS = {
    "none": {},
    "realistic": {"augment": "realistic"},
    "ground": {"placement_mode": "ground"},
    "realistic + ground": {"augment": "realistic", "placement_mode": "ground"},
    "objects 2-3": {"objects": "2-3"},
    "realistic + ground + objects 2-3": {"augment": "realistic", "placement_mode": "ground", "objects": "2-3"},
    "ground, drawn rows": {"placement_mode": "ground", "rows": DRAWN},
}
WITH_DEPTH = " + depth"  # the variant of an option with 16-bit depth storage
REFERENCE = "seed-style loop"
LOADER = "loader decode"  # the training loader's tensors of a `none + depth` row: fg_bg, mask, depth, bg
LOADER_DEPTH = "loader depth decode"  # the depth part of it alone
BUDGET_SLACK = 1.10  # a variant is reported over budget beyond 10% above it
PLACEMENTS = 20  # rows come in runs of 2 x 20 per (background, cut-out) pair, as in the classic run
PAIR_ROWS = 2 * PLACEMENTS


def variant_names() -> list[str]:
    return [*OPTIONS, *(name + WITH_DEPTH for name in OPTIONS), LOADER, LOADER_DEPTH, REFERENCE]


def row_indices(rows: int, backgrounds: int, foregrounds: int) -> list[int]:
    """Whole (background, cut-out) pairs' runs of rows (both flips, every placement), pairs spread over every
    background and cut-out."""
    from builder.contract.plan import SampleSpace

    space, pairs = SampleSpace(backgrounds, foregrounds, PLACEMENTS), max(1, -(-rows // PAIR_ROWS))
    chosen = [(p % backgrounds, (7 * p + p // backgrounds) % foregrounds) for p in range(pairs)]
    return [space.index(bg, fg, flip, k) for bg, fg in chosen for flip in (0, 1) for k in range(PLACEMENTS)][:rows]


def stored_maps(bg_dir: Path, resolution: int) -> list[np.ndarray]:
    """The fixed depth maps: the stand-in estimator's 16-bit levels of each background, as the model's would be."""
    from PIL import Image

    from builder.testing.standin_depth import StandinDepthEstimator

    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((resolution, resolution)))
                       for p in sorted(bg_dir.iterdir())])
    return list(StandinDepthEstimator().predict(images).depth)


def option_row(settings, inputs, maps: list[np.ndarray]) -> Callable[[int], dict]:
    """A row of these settings as a worker makes it (render, statistics; with depth: the ring copy, the depth
    cell of its background's fixed map)."""
    from builder.contract.depth_storage import depth_storage
    from builder.contract.schema import DEFAULT
    from builder.rows.render import RenderContext, render_sample
    from builder.rows.stats import StatsBook
    from builder.run.workers import depth_cell

    ctx = RenderContext(settings, inputs, stored_bg_depth=tuple(m.astype(np.float32) for m in maps).__getitem__)
    storage, ring = depth_storage(settings.depth_bits), np.empty((settings.resolution,) * 2 + (3,), np.uint8)

    def row(index: int) -> dict:
        stats = StatsBook(DEFAULT.peaks)
        cells, image = render_sample(ctx, index, stats)
        if image is not None:
            ring[...] = image
            cells["depth"] = depth_cell(storage, maps[ctx.plan.inputs_of(index)[0]], stats)
        return cells

    return row


def loader_rows(rows: dict[int, dict], bg_dir: Path, depth_only: bool) -> Callable[[int], object]:
    """The training loader's work for a stored row (builder.train.loader): normalised fg_bg, mask, depth in
    [0, 1] and the cached background's copy; or only the depth."""
    from builder.train.loader import Normaliser, decode_depth, decode_unit_image

    normalise = Normaliser([0.5] * 3, [0.25] * 3)
    backgrounds = [normalise(p.read_bytes()) for p in sorted(bg_dir.iterdir())]

    def row(index: int):
        cells = rows[index]
        depth = decode_depth(cells["depth"]["bytes"], 0.0, 1.0, "unit")
        if depth_only:
            return depth
        return (normalise(cells["fg_bg"]["bytes"]), decode_unit_image(cells["mask"]["bytes"]), depth,
                backgrounds[cells["bg_id"]].clone())

    return row


def reference_row(bg_dir: Path, fg_dir: Path, space) -> Callable[[int], list[bytes]]:
    from builder.bench.composite import seed_style_sample

    bgs, fgs = sorted(bg_dir.iterdir()), sorted(fg_dir.iterdir())

    def row(index: int) -> list[bytes]:
        bg_id, fg_id, flip, _ = space.decompose(index)
        return seed_style_sample(bgs[bg_id], fgs[fg_id], bool(flip), random.Random(index))

    return row


def variants(bg_dir: Path, fg_dir: Path, resolution: int, indices: list[int]) -> dict[str, Callable]:
    """Each variant's work for one row, by name (`variant_names`)."""
    from builder.contract.plan import SampleSpace
    from builder.contract.settings import ContentSettings, RunOptions
    from builder.rows.assets import load_inputs

    maps, found = stored_maps(bg_dir, resolution), {}
    product = len(maps) * len(list(fg_dir.iterdir())) * PAIR_ROWS  # drawn rows: as many as the product, same ids
    for name, fields in OPTIONS.items():
        rows = {"rows": product} if fields.get("rows") == DRAWN else {"placements": PLACEMENTS}
        fields = {key: value for key, value in fields.items() if key != "rows"}
        for suffix, no_depth in (("", True), (WITH_DEPTH, False)):
            settings = ContentSettings(resolution=resolution, no_depth=no_depth, **rows, **fields)
            inputs = load_inputs(settings, RunOptions(bg_dir=bg_dir, fg_dir=fg_dir))
            found[name + suffix] = option_row(settings, inputs, maps)
    stored = {index: found["none" + WITH_DEPTH](index) for index in indices}
    found[LOADER] = loader_rows(stored, bg_dir, depth_only=False)
    found[LOADER_DEPTH] = loader_rows(stored, bg_dir, depth_only=True)
    space = SampleSpace(len(maps), len(list(fg_dir.iterdir())), PLACEMENTS)
    found[REFERENCE] = reference_row(bg_dir, fg_dir, space)
    return {name: found[name] for name in variant_names()}


def cpu_ms_per_row(row: Callable[[int], object], indices: list[int]) -> float:
    start = time.process_time()
    for index in indices:
        row(index)
    return (time.process_time() - start) * 1000 / len(indices)


def measure(bg_dir: str, fg_dir: str, resolution: int, rows: int, rounds: int) -> dict:
    """Every variant on the same rows, one warm-up pass (caches filled as in a long run), then `rounds` rounds
    in which each variant runs once: CPU ms per row per round."""
    import torch

    torch.set_num_threads(1)
    bg_dir, fg_dir = Path(bg_dir), Path(fg_dir)
    indices = row_indices(rows, len(list(bg_dir.iterdir())), len(list(fg_dir.iterdir())))
    found = variants(bg_dir, fg_dir, resolution, indices)
    for row in found.values():
        cpu_ms_per_row(row, indices)
    per_round: dict[str, list[float]] = {name: [] for name in found}
    for _ in range(rounds):
        for name, row in found.items():
            per_round[name].append(cpu_ms_per_row(row, indices))
    return {"rows": len(indices), "rounds": rounds, "resolution": resolution, "ms_per_row_per_round": per_round}


def summarise(measured: dict) -> dict:
    """Medians over the rounds, and each variant's ratio to `none` and to the reference, taken round by round
    (the ratio of two figures of one round, so load that changes between rounds cancels too)."""
    per_round = measured["ms_per_row_per_round"]
    ratio = lambda name, base: median([a / b for a, b in zip(per_round[name], per_round[base])])  # noqa: E731
    return {**measured,
            "ms_per_row": {name: median(values) for name, values in per_round.items()},
            "x_none": {name: ratio(name, "none") for name in per_round},
            "x_reference": {name: ratio(name, REFERENCE) for name in per_round}}


def run(bg_dir: Path, fg_dir: Path, core: int, rows: int, rounds: int, budget: Path | None) -> dict:
    """The section: measured in a fresh process pinned to `core`, summarised, checked against `budget`."""
    from builder.bench.common import in_child

    result = summarise(in_child(measure, str(bg_dir), str(fg_dir), RESOLUTION, rows, rounds, cores={core}))
    result["core"] = core
    if budget is not None:
        name = budget.relative_to(ROOT) if budget.is_relative_to(ROOT) else budget
        result["budget"] = {"file": str(name), "over": over_budget(result, json.loads(budget.read_text()))}
    return result


def over_budget(result: dict, budget: dict) -> list[dict]:
    """Variants more than 10% over their accepted ms per row, relative to the reference: the budget's ms scaled
    by (reference measured now / reference in the budget), so the machine's speed cancels."""
    scale = result["ms_per_row"][REFERENCE] / budget["reference_ms_per_row"]
    over = []
    for name, accepted in budget["ms_per_row"].items():
        allowed = accepted * scale
        measured = result["ms_per_row"].get(name)
        if measured is not None and measured > allowed * BUDGET_SLACK:
            over.append({"variant": name, "ms_per_row": measured, "allowed_ms_per_row": allowed,
                         "over_by": measured / allowed - 1})
    return over


def lines(r: dict | None) -> list[str]:
    """The section's own table: each option without and with depth, the loader and the reference; then the
    variants over budget."""
    if not r:
        return []
    ms, x_none, x_ref = r["ms_per_row"], r["x_none"], r["x_reference"]
    out = [f"CPU ms per row, one core, R = {r['resolution']}, {r['rows']} rows, median of {r['rounds']} "
           f"interleaved rounds; x none and x {REFERENCE} are medians of per-round ratios", "",
           "| option | no depth | x none | + 16-bit depth | x none |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in OPTIONS:
        deep = name + WITH_DEPTH
        out.append(f"| {name} | {ms[name]:.2f} | {x_none[name]:.2f} | {ms[deep]:.2f} | {x_none[deep]:.2f} |")
    for name in (LOADER, LOADER_DEPTH):
        out.append(f"| {name} | {ms[name]:.2f} ({1000 / ms[name]:,.0f} rows/s) | | | |")
    out.append(f"| {REFERENCE} (reference) | {ms[REFERENCE]:.2f} | {x_none[REFERENCE]:.2f} | | |")
    out.append(f"| `none` per core against the {REFERENCE} | {1 / x_ref['none']:.2f}x as fast | | | |")
    if "budget" in r:
        over = r["budget"]["over"]
        out.append("")
        out.append(f"budget {r['budget']['file']}: " + ("every variant within 10%" if not over else
                   f"{len(over)} over by more than 10%:"))
        out += [f"  OVER BUDGET {o['variant']}: {o['ms_per_row']:.2f} ms per row, allowed "
                f"{o['allowed_ms_per_row']:.2f} here (+{o['over_by']:.0%})" for o in over]
    return out
