"""verify's reference inputs: the stored backgrounds and cut-outs, and the grounds placement derived from their
depth, found in one pass over their shards (each decoded once to know it decodes, and its size) and decoded again
when a check first needs one, kept in a bounded cache: memory does not grow with the number of inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

from builder.contract import given_depth as given
from builder.contract.schema import BACKGROUNDS, FOREGROUNDS, ConfigSchema
from builder.contract.settings import Manifest
from builder.rows.bg_depth import demo_bg_depths
from builder.rows.cache import LruCache
from builder.rows.geometry import BackgroundGround
from builder.rows.stats import StatsBook
from builder.run.stored_depth import ShardDepth
from builder.verify.checks import Reference, decode_checked
from builder.verify.layout import Layout, Shard
from builder.verify.reader import iter_rows

Where = dict[int, tuple[Shard, int]]  # id -> (its shard, its row there)


class StoredInputs(Mapping):
    """Values by id, made by `load(id)` -> (value, bytes) when a check first asks and kept in `cache`; `known`:
    the ids there are, all known up front."""

    def __init__(self, kind: str, known: Iterable[int], load: Callable[[int], tuple[object, int]], cache: LruCache):
        self.kind, self.known, self._load, self._cache = kind, frozenset(known), load, cache

    def __contains__(self, key) -> bool:
        return key in self.known

    def __getitem__(self, key):
        if key not in self.known:
            raise KeyError(key)
        return self._cache.get((self.kind, key), lambda: self._load(key))

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.known))

    def __len__(self) -> int:
        return len(self.known)


def _kept(array: np.ndarray) -> tuple[np.ndarray, int]:
    array.setflags(write=False)
    return array, array.nbytes


def _ground(disparity: np.ndarray) -> tuple[BackgroundGround, int]:
    ground = BackgroundGround.of(disparity)
    return ground, ground.disparity.nbytes + ground.ground.nbytes


def _image_loader(schema: ConfigSchema, where: Where) -> Callable[[int], tuple[np.ndarray, int]]:
    def load(key: int) -> tuple[np.ndarray, int]:
        shard, row = where[key]
        cell = shard.file.row(row, ["image"])["image"]
        return _kept(decode_checked(cell, schema, "image", None, StatsBook(schema.peaks)))
    return load


def places_by_stored_depth(manifest: Manifest, row: dict) -> bool:
    """Ground placement read this `backgrounds` row's stored depth, and it is usable (a given map that does not
    decode as stored, or whose range is wrong, is not: its row check says why). Checked once, in the index pass;
    the disparity itself is derived when a check first needs it (`ShardDepth`)."""
    settings, stored_given = manifest.settings, manifest.stores_given_depth
    if not settings.with_ground or not (stored_given or row.get("depth")):
        return False
    if stored_given:
        r = settings.resolution
        try:  # its format, mode and size as stored
            decode_checked(row[given.COLUMN], BACKGROUNDS, given.COLUMN, (r, r), StatsBook(BACKGROUNDS.peaks))
        except (ValueError, TypeError):
            return False
        return not given.range_problems(row[given.MIN_COLUMN], row[given.MAX_COLUMN])
    return True


def index_shards(manifest: Manifest, layout: Layout, schema: ConfigSchema
                 ) -> tuple[Where, dict[int, tuple[int, int]], Where]:
    """(where each decodable stored input is, its (height, width), where each background's usable stored depth
    is). A row whose image does not decode is left out (its own check reports it; samples that need it say it is
    unavailable)."""
    where, shapes, depth_at = {}, {}, {}
    for shard in layout.shards[schema.name]:
        try:
            for offset, rows, _ in iter_rows(shard, np.zeros(0, dtype=bool)):
                for n, row in enumerate(rows):
                    try:
                        shape = decode_checked(row["image"], schema, "image", None, StatsBook(schema.peaks)).shape[:2]
                    except (ValueError, TypeError):
                        continue
                    key = row[schema.key_column]
                    where[key], shapes[key] = (shard, offset + n), shape
                    if schema is BACKGROUNDS and places_by_stored_depth(manifest, row):
                        depth_at[key] = (shard, offset + n)
        except Exception:  # noqa: BLE001 - an unreadable shard is reported when it is checked
            continue
    return where, shapes, depth_at


def ground_inputs(manifest: Manifest, depth_at: Where, cache: LruCache) -> StoredInputs:
    """Each background's ground, from the depth it was placed by: its stored depth (the --bg-depth-dir map, or the
    model's), or the demo's maps made again."""
    settings = manifest.settings
    if settings.with_ground and manifest.bg_depths is not None and not manifest.stores_given_depth:
        maps = demo_bg_depths(manifest)  # the demo's few
        return StoredInputs("ground", range(len(maps)), lambda bg_id: _ground(maps[bg_id]), cache)
    depth = stored_depth(manifest, depth_at)
    return StoredInputs("ground", depth_at, lambda bg_id: _ground(depth(bg_id)), cache)


def focal_inputs(manifest: Manifest, depth_at: Where, cache: LruCache) -> StoredInputs:
    """Each background's stored focal length at R, where the depth model predicts its field of view (none
    otherwise): what physical placement read without --focal-px."""
    known = depth_at if manifest.column_groups["with_field_of_view"] else ()
    depth = stored_depth(manifest, depth_at)
    return StoredInputs("focal", known, lambda bg_id: (depth.focal(bg_id), 8), cache)


def stored_depth(manifest: Manifest, depth_at: Where) -> ShardDepth:
    """The stored depth and focal lengths read back as the generator's placement read them (builder.run)."""
    return ShardDepth(manifest.settings, manifest.stores_given_depth,
                      {bg_id: (shard.file, row) for bg_id, (shard, row) in depth_at.items()})


def load_reference(manifest: Manifest, layout: Layout, cache: LruCache | None = None) -> Reference:
    """The stored backgrounds and cut-outs every sample row is checked against, the grounds standing rules place
    by, and the focal lengths physical placement read from `backgrounds`."""
    cache = cache or LruCache()
    bg_where, bg_shapes, depth_at = index_shards(manifest, layout, BACKGROUNDS)
    fg_where, fg_shapes, _ = index_shards(manifest, layout, FOREGROUNDS)
    return Reference(manifest, StoredInputs(BACKGROUNDS.name, bg_where, _image_loader(BACKGROUNDS, bg_where), cache),
                     StoredInputs(FOREGROUNDS.name, fg_where, _image_loader(FOREGROUNDS, fg_where), cache), fg_shapes,
                     ground_inputs(manifest, depth_at, cache), focal_inputs(manifest, depth_at, cache))
