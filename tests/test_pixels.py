"""builder.rows.pixels and builder.rows.cache: every input file is read once up front (hashed, decoded to find bad
ones, nothing kept), decoded again when a row first needs it, and kept within a byte budget per process: a budget
too small to hold anything gives the same rows, and worker processes are sent records, not pixels."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from PIL import Image

from builder.contract.plan import Placement
from builder.contract.schema import BACKGROUNDS, DEFAULT, FOREGROUNDS
from builder.contract.settings import ContentSettings, RunOptions
from builder.rows import assets
from builder.rows.assets import load_inputs
from builder.rows.bg_depth import attach_bg_depths
from builder.rows.cache import LruCache
from builder.rows.composite import ForegroundCache
from builder.rows.geometry import BackgroundGround
from builder.rows.render import RenderContext, render_background, render_foreground, render_sample
from builder.rows.sources import folders
from builder.rows.stats import StatsBook
from tests.conftest import write_inputs

R = 64


def held_bytes(value) -> int:
    """What a cached value really holds."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, Image.Image):
        return len(value.tobytes())
    assert isinstance(value, BackgroundGround)
    return value.disparity.nbytes + value.ground.nbytes


def test_lru_cache_drops_the_least_recently_used_past_its_budget():
    cache, made = LruCache(100), []

    def get(key: str, size: int) -> str:
        return cache.get(key, lambda: (made.append(key) or key, size))

    get("a", 40), get("b", 40), get("a", 40)  # a is used again: b is now the least recent
    get("c", 40)
    assert made == ["a", "b", "c"] and cache.values() == ["a", "c"] and cache.cached_bytes == 80
    assert get("huge", 101) == "huge" and cache.values() == ["a", "c"]  # larger than the budget: never kept
    get("b", 40)
    assert made[-1] == "b" and cache.values() == ["c", "b"] and cache.made == 5


def test_each_file_is_read_once_up_front_and_decoded_on_first_use(tmp_path, monkeypatch):
    bg_dir, fg_dir = write_inputs(tmp_path / "in", n_bg=5, n_fg=5)
    opened = []
    for module in (assets, folders):
        original = module.open_image
        monkeypatch.setattr(module, "open_image", lambda data, original=original: opened.append(1) or original(data))
    settings = ContentSettings(resolution=R, no_depth=True, placements=2)
    inputs = load_inputs(settings, RunOptions(bg_dir=bg_dir, fg_dir=fg_dir))
    assert len(opened) == 10  # the survey: each file decoded once, to find bad ones
    ctx = RenderContext(settings, inputs)
    assert len(opened) == 10 and ctx.foreground_shapes == [c.shape for c in inputs.cutouts]
    render_sample(ctx, 0, StatsBook(DEFAULT.peaks))
    assert len(opened) == 12  # the row's background and cut-out, nothing else
    render_sample(ctx, 1, StatsBook(DEFAULT.peaks))
    assert len(opened) == 12  # the same pair (placement 1): from the cache
    file_bytes = sum(p.stat().st_size for folder in (bg_dir, fg_dir) for p in folder.iterdir())
    pickled = len(pickle.dumps(dataclasses.replace(ctx)))  # what a worker process is sent
    assert file_bytes > 100_000 and pickled < 5_000


def contexts(settings: ContentSettings, run: RunOptions, budget: int) -> tuple[RenderContext, RenderContext]:
    inputs = attach_bg_depths(load_inputs(settings, run), settings, run)
    return RenderContext(settings, inputs), RenderContext(settings, inputs, cache_bytes=budget)


@pytest.mark.parametrize("options", [
    {"placements": 2},
    {"rows": 60, "objects": "2-3", "augment": "realistic"},
    {"rows": 40, "placement_mode": "ground", "demo": True},
], ids=["product", "drawn-objects-augment", "ground-demo"])
def test_a_tiny_budget_holds_no_more_and_gives_the_same_rows(tmp_path, options):
    options = dict(options)
    demo = options.pop("demo", False)
    if demo:
        run = RunOptions(demo=True)
    else:
        bg_dir, fg_dir = write_inputs(tmp_path / "in", n_bg=4, n_fg=6)
        run = RunOptions(bg_dir=bg_dir, fg_dir=fg_dir)
    settings = ContentSettings(resolution=R, no_depth=True, **options)
    budget = 40_000  # about one background's ground, or a cut-out and its prepared copy, at R = 64
    roomy, tiny = contexts(settings, run, budget)
    renderers = [(render_background, BACKGROUNDS, roomy.plan.space.n_bg),
                 (render_foreground, FOREGROUNDS, roomy.plan.space.n_fg),
                 (render_sample, DEFAULT, roomy.plan.sample_count)]
    for render, schema, count in renderers:
        for key in range(count):
            expected, _ = render(roomy, key, StatsBook(schema.peaks))
            assert render(tiny, key, StatsBook(schema.peaks))[0] == expected
            kept = tiny.pixels.cache.values()
            assert tiny.pixels.cache.cached_bytes == sum(held_bytes(v) for v in kept) <= budget
    assert tiny.pixels.cache.made > roomy.pixels.cache.made  # the tiny one decoded again what it could not keep


def test_resized_cut_outs_are_kept_from_their_second_use_and_within_their_budget():
    cutouts = {n: np.full((40 + n, 30, 4), 200, dtype=np.uint8) for n in range(3)}
    cache = ForegroundCache(cutouts.__getitem__, LruCache(), budget_bytes=11_000)
    first = cache.placed(0, 0, Placement(0, 0, 0.5, 20, 30))
    assert cache.cached_bytes == 0  # used once: not kept (rows drawn from many cut-outs rarely repeat a size)
    again = cache.placed(0, 0, Placement(0, 0, 0.5, 20, 30))
    assert cache.cached_bytes == again.nbytes == 20 * 30 * 4 and np.array_equal(first, again)
    for n in range(3):
        for _ in range(2):
            cache.placed(n, 1, Placement(0, 0, 0.5, 30, 40))
    assert cache.cached_bytes == 2_400 + 4_800 and len(cache._resized) == 2  # the third would pass 11,000
