"""Inputs read back from a dataset's own shards when first needed, never all held: the backgrounds' stored depth
that ground placement by the model's depth reads (builder.run.stored_depth), and verify's reference inputs
(builder.verify.stored)."""

from __future__ import annotations

import io
import pickle

import numpy as np
from PIL import Image

from builder.contract.schema import BACKGROUNDS, FOREGROUNDS
from builder.rows.bg_depth import stored_disparity
from builder.rows.cache import LruCache
from builder.rows.configs import dataset_tasks
from builder.run.pipeline import shard_depth
from builder.store.output import OutputStore
from builder.verify.layout import find_layout
from builder.verify.stored import load_reference
from tests.conftest import read_config


def test_stored_background_depth_is_read_back_from_its_shard_when_asked(reference_dataset):
    """What a worker is sent says where each background's depth is stored, and reads it from there as whole rows
    read it."""
    store = OutputStore(reference_dataset)
    manifest = store.read_manifest()
    tasks = [t for t in dataset_tasks(manifest.split_plan(), manifest.settings.shard_size)
             if t.config_name == BACKGROUNDS.name]
    depth = shard_depth(manifest.settings, False, manifest.split_plan(), tasks, store)
    rows = read_config(reference_dataset, BACKGROUNDS.name).to_pylist()
    assert len(rows) == manifest.split_plan().space.n_bg > 1
    for row in reversed(rows):
        assert np.array_equal(depth(row["bg_id"]), stored_disparity(row, manifest.settings, False), equal_nan=True)
    assert len(pickle.dumps(depth)) < 2_000


def test_verify_knows_every_stored_input_up_front_and_decodes_each_when_asked(no_depth_reference):
    store = OutputStore(no_depth_reference)
    manifest = store.read_manifest()
    cache = LruCache(400_000)  # two or three stored inputs at R = 224
    reference = load_reference(manifest, find_layout(store)[0], cache=cache)
    assert cache.made == 0 and cache.values() == []
    for schema, stored in ((FOREGROUNDS, reference.foregrounds), (BACKGROUNDS, reference.backgrounds)):
        rows = read_config(no_depth_reference, schema.name).to_pylist()
        assert sorted(stored) == sorted(row[schema.key_column] for row in rows)
        for row in rows:
            pixels = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
            assert np.array_equal(stored[row[schema.key_column]], pixels)
            if schema is FOREGROUNDS:
                assert reference.foreground_shapes[row["fg_id"]] == pixels.shape[:2]
            assert 0 < cache.cached_bytes <= 400_000
    assert cache.made == len(reference.foregrounds) + len(reference.backgrounds)
