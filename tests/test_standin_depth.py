"""The benchmark-only stand-in depth estimator: cheap, smooth, deterministic, and not part of the generator."""

from pathlib import Path

import numpy as np

from builder.run.depth import DepthBatch
from builder.testing.standin_depth import StandinDepthEstimator

ROOT = Path(__file__).resolve().parent.parent


def photos(count: int, side: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] / side
    base = np.stack([200 * xx, 150 * yy, 100 * (1 - xx)], axis=-1)
    return np.stack([(base + rng.uniform(0, 50, 3)).astype(np.uint8) for _ in range(count)])


def test_maps_have_the_depth_batch_shape_dtype_and_full_range():
    images = photos(3, 96)
    batch = StandinDepthEstimator().predict(images)
    assert isinstance(batch, DepthBatch)
    assert batch.depth.shape == (3, 96, 96) and batch.depth.dtype == np.uint16
    assert batch.depth_min.dtype == batch.depth_max.dtype == np.float32
    assert (batch.depth.min(axis=(1, 2)) == 0).all() and (batch.depth.max(axis=(1, 2)) == 65535).all()
    assert (batch.depth_min < batch.depth_max).all()
    raw = StandinDepthEstimator().predict_raw(images)
    assert tuple(raw.shape) == (3, 96, 96) and np.allclose(raw.amin(dim=(1, 2)).numpy(), batch.depth_min)


def test_maps_are_smooth_and_nearer_towards_the_bottom():
    depth = StandinDepthEstimator().predict(photos(2, 128)).depth.astype(np.int64)
    assert (depth[:, -8:].mean(axis=(1, 2)) > depth[:, :8].mean(axis=(1, 2))).all()  # inverse depth grows
    steps = np.abs(np.diff(depth, axis=2)).max()
    assert 0 < steps < 65535 // 20  # no jumps between neighbouring pixels
    assert len(np.unique(depth[0])) > 1000


def test_deterministic_and_independent_of_the_batch():
    images = photos(4, 64)
    whole = StandinDepthEstimator().predict(images).depth
    assert np.array_equal(whole, StandinDepthEstimator().predict(images).depth)
    assert np.array_equal(whole[2:3], StandinDepthEstimator().predict(images[2:3]).depth)


def test_not_reachable_from_the_generator():
    users = [path for path in [*ROOT.glob("builder/*.py"), ROOT / "scripts" / "generate.py", ROOT / "fgbg_depth.py"]
             if "standin_depth" in path.read_text() and path.name != "standin_depth.py"]
    assert users == []
