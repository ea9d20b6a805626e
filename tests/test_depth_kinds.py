"""builder.contract.depth_kinds: what a stored map means, how ground placement reads it, and how the kind is
recorded (only when metric, so every relative dataset keeps its manifest)."""

from __future__ import annotations

import numpy as np

from builder.contract.depth_kinds import METRIC, RELATIVE, depth_kind
from builder.contract.depth_storage import depth_storage
from builder.contract.settings import ContentSettings


def test_a_metric_map_is_read_as_one_over_metres_and_a_relative_one_as_its_levels():
    levels = np.array([[0, 65535], [13107, 32768]], dtype=np.uint16)
    storage = depth_storage(16)
    metres = storage.raw(levels, -0.5, 4.5)  # -0.5, 4.5, 0.5, 2.0...: a bicubic undershoot below 0
    disparity = METRIC.disparity(levels, -0.5, 4.5, storage)
    assert np.isnan(disparity[0, 0])
    np.testing.assert_allclose(disparity[[0, 1, 1], [1, 0, 1]], 1 / metres[[0, 1, 1], [1, 0, 1]])
    relative = RELATIVE.disparity(levels, -0.5, 4.5, storage)
    assert relative.dtype == np.float32 and np.array_equal(relative, levels.astype(np.float32))
    eight_bit = depth_storage(8)
    np.testing.assert_allclose(METRIC.disparity(np.array([[255]], np.uint8), 1.0, 3.0, eight_bit), [[1 / 3]])


def test_only_a_metric_kind_is_recorded():
    relative = ContentSettings(depth_input_size=518, depth_kind="relative").to_json()
    assert "depth_kind" not in relative and relative == ContentSettings(depth_input_size=518).to_json()
    metric = ContentSettings(depth_input_size=518, depth_kind="metric")
    assert metric.to_json()["depth_kind"] == "metric"
    assert ContentSettings.from_json(metric.to_json()).kind is METRIC
    assert ContentSettings.from_json(relative).kind is RELATIVE is depth_kind(None)
    assert "depth_kind" not in ContentSettings(no_depth=True, depth_kind="metric").to_json()


def test_the_card_labels():
    assert (RELATIVE.label, METRIC.label) == ("relative-inverse", "metric-m")
    assert "metres" in METRIC.meaning and "larger is nearer" in RELATIVE.meaning
