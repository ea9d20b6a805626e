"""builder.contract.depth_storage: the one description of stored depth, and the consumers that must agree with it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from builder.contract.depth_storage import DEPTH_BITS, QUANTISED, depth_storage, storage_of_mode
from builder.contract.schema import BACKGROUNDS, DEFAULT
from builder.rows.encode import encode_depth


def test_sixteen_bits_store_the_quantised_levels_as_they_are():
    levels = np.array([[0, 1, 32767, 65535]], np.uint16)
    assert depth_storage(16).levels(levels) is levels
    assert QUANTISED.bits == 16 and QUANTISED.peak == 65535


def test_eight_bits_round_to_nearest():
    quantised = np.array([0, 128, 129, 257, 32767, 32768, 65407, 65535], np.uint16)
    expected = np.round(quantised.astype(np.float64) * 255 / 65535).astype(np.uint8)
    got = depth_storage(8).levels(quantised)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("bits", DEPTH_BITS)
def test_raw_and_unit_invert_the_min_max_scaling(bits):
    storage = depth_storage(bits)
    raw = np.linspace(-2.0, 5.0, 64).reshape(8, 8)
    quantised = np.round((raw - raw.min()) / (raw.max() - raw.min()) * QUANTISED.peak).astype(np.uint16)
    levels = storage.levels(quantised)
    back = storage.raw(levels, raw.min(), raw.max())
    assert np.abs(back - raw).max() <= (raw.max() - raw.min()) / storage.peak
    unit = storage.unit(levels)
    assert unit.min() == 0 and unit.max() == 1


@pytest.mark.parametrize("bits", DEPTH_BITS)
def test_encoded_png_decodes_in_the_storage_mode(bits):
    storage = depth_storage(bits)
    levels = storage.levels(np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16))
    image = Image.open(io.BytesIO(encode_depth(levels)))
    assert image.mode == storage.mode
    assert storage_of_mode(image.mode) is storage
    np.testing.assert_array_equal(np.asarray(image), levels)


@pytest.mark.parametrize("bits", DEPTH_BITS)
def test_schema_and_statistics_follow_the_storage(bits):
    storage = depth_storage(bits)
    for schema in (DEFAULT, BACKGROUNDS):
        spec = schema.for_depth_bits(bits).column("depth").image
        assert spec.mode == storage.mode
        assert spec.max_value == storage.peak  # statistics are scaled to [0, 1] by it


@pytest.mark.parametrize("bits", DEPTH_BITS)
def test_card_reading_text_states_this_storage(bits):
    storage = depth_storage(bits)
    text = storage.card_reading()
    assert f"png / {storage.peak} *" in text and f"mode `{storage.mode}`" in text
