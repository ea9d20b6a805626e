"""The accelerator's side of a rank, on CPU: the CUDA path's logic (page-locking the rings in place, the
side-stream read-back, events) with its CUDA calls stood in for, compared with DepthEstimator.predict; the
fallbacks when the platform refuses page-locking, a copy stream or torch.compile; padding for a compiled model;
the GPU run settings."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from builder.contract.errors import UsageError
from builder.contract.settings import GenerateConfig
from builder.run.depth import DepthEstimator
from builder.run.feed import CUDA_BATCH_SIZE, DepthFeed, check, compile_estimator, resolve_batch_size

RESOLUTION = 32


class FakeEvent:
    def __init__(self, log):
        self.log, self.recorded = log, 0

    def record(self, stream):
        self.recorded += 1
        self.log.append(("record", stream))

    def synchronize(self):
        assert self.recorded, "waited on an event never recorded"
        self.log.append(("synchronize", self))


class FakeCuda:
    """Records what the feed asks of CUDA; copies then run synchronously on CPU tensors."""

    def __init__(self):
        self.log, self.pinned = [], set()

    def register(self, array):
        assert array.flags.c_contiguous and array.ctypes.data not in self.pinned
        self.pinned.add(array.ctypes.data)

    def unregister(self, array):
        self.pinned.remove(array.ctypes.data)

    def pinned_buffer(self, shape, dtype):
        self.log.append(("staging", shape))
        return torch.zeros(shape, dtype=dtype)

    def stream(self):
        return "copy-stream"

    def current_stream(self):
        return "compute-stream"

    def event(self):
        return FakeEvent(self.log)

    def wait_for_compute(self, stream):
        self.log.append(("wait", stream))

    def use(self, stream):
        self.log.append(("use", stream))
        return contextlib.nullcontext()

    def keep_alive(self, tensor, stream):
        self.log.append(("keep", stream, tensor.dtype, tuple(tensor.shape)))


@pytest.fixture(scope="module")
def estimator(tiny_model):
    return DepthEstimator.load(str(tiny_model), 28, torch.device("cpu"), "float32")


def rings(batch: int, seed: int = 0):
    images = np.random.default_rng(seed).integers(0, 256, (3, batch, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    return images, np.zeros((2, batch, RESOLUTION, RESOLUTION), np.uint16)


def test_cuda_path_equals_predict_and_unpins_the_rings(estimator):
    images, depths = rings(4)
    cuda = FakeCuda()
    with DepthFeed(estimator, images, depths, cuda=cuda) as feed:
        assert cuda.pinned == {images.ctypes.data, depths.ctypes.data}
        feed.start(0, 0, 4)
        feed.start(1, 1, 3)  # queued before the first is read back: two host buffers in flight
        first, second = feed.finish(), feed.finish()
    assert cuda.pinned == set()
    for (low, high, _), slot, count in ((first, 0, 4), (second, 1, 3)):
        expected = estimator.predict(images[slot, :count])
        np.testing.assert_array_equal(depths[slot, :count], expected.depth)
        np.testing.assert_array_equal(low, expected.depth_min)
        np.testing.assert_array_equal(high, expected.depth_max)
    assert depths[1, 3].max() == 0  # rows past the count are not written
    assert [entry[0] for entry in cuda.log].count("synchronize") == 2
    assert cuda.log[:3] == [("wait", "copy-stream"), ("use", "copy-stream"), ("record", "copy-stream")]
    # the device tensors the side stream copies from stay allocated until its copies are done: each batch's maps
    # (int16, count x R x R) and its ranges (min, max, finite: 3 x count)
    kept = [entry[1:] for entry in cuda.log if entry[0] == "keep"]
    assert kept == [("copy-stream", torch.int16, (4, RESOLUTION, RESOLUTION)), ("copy-stream", torch.float32, (3, 4)),
                    ("copy-stream", torch.int16, (3, RESOLUTION, RESOLUTION)), ("copy-stream", torch.float32, (3, 3))]


def test_close_waits_for_copies_in_flight(estimator):
    images, depths = rings(2)
    cuda = FakeCuda()
    feed = DepthFeed(estimator, images, depths, cuda=cuda)
    feed.start(0, 0, 2)
    feed.close()
    assert ("synchronize" in [entry[0] for entry in cuda.log]) and cuda.pinned == set() and not feed.pending


def test_padded_batches_give_the_unpadded_maps(estimator):
    """A compiled model sees every batch at full size; the rows past the count are dropped."""
    images, depths = rings(4, seed=1)
    padded_depths = depths.copy()
    with DepthFeed(estimator, images, depths) as plain, DepthFeed(estimator, images, padded_depths, pad=True) as pad:
        plain.start(2, 1, 3)
        pad.start(2, 1, 3)
        assert pad.model_input(2, 3).shape[0] == 4 and plain.model_input(2, 3).shape[0] == 3
        for a, b in zip(plain.finish()[:2], pad.finish()[:2]):
            np.testing.assert_allclose(a, b, rtol=1e-5)
    assert np.abs(depths.astype(int) - padded_depths.astype(int)).max() <= 1


def test_focal_lengths_come_back_with_the_ranges(estimator, monkeypatch):
    """A model that predicts its field of view: its focal lengths come back with the batch's ranges, on the CUDA path
    (beside the finite flags) as on the CPU path; a model without one gives None."""
    images, depths = rings(4)
    with DepthFeed(estimator, images, depths) as feed:
        feed.start(0, 0, 3)
        assert feed.finish().focal is None and not estimator.field_of_view
    maps = DepthEstimator.predict_maps
    monkeypatch.setattr(estimator, "predict_maps", lambda batch: (maps(estimator, batch)[0],
                                                                  10 * torch.arange(1, len(batch) + 1).float()))
    for cuda in (FakeCuda(), None):
        with DepthFeed(estimator, images, depths, cuda=cuda) as feed:
            feed.start(0, 0, 3)
            ranges = feed.finish()
        np.testing.assert_array_equal(ranges.focal, [10, 20, 30])
        np.testing.assert_array_equal(ranges.low, estimator.predict(images[0, :3]).depth_min)


def test_check_names_the_failed_call():
    check(0, "cudaHostRegister")
    with pytest.raises(RuntimeError, match="cudaHostRegister failed with CUDA error 801"):
        check(801, "cudaHostRegister")


class RefusingCuda(FakeCuda):
    """A platform that page-locks the image ring but refuses the depth ring (gVisor, a memlock limit...)."""

    def register(self, array):
        if self.pinned:
            check(801, "cudaHostRegister")
        super().register(array)


def warnings_in(captured) -> list[str]:
    return [line for line in captured.err.splitlines() if line.startswith("warning:")]


def test_refused_page_lock_falls_back_to_staging_copies(estimator, capsys):
    images, depths = rings(4, seed=2)
    cuda = RefusingCuda()
    with DepthFeed(estimator, images, depths, cuda=cuda) as feed:
        assert cuda.pinned == set()  # the ring that was page-locked is unlocked again
        feed.start(0, 0, 4)
        feed.start(1, 1, 2)
        assert depths.max() == 0  # the maps wait in the staging buffer until their copy is done
        first, second = feed.finish(), feed.finish()
    for (low, high, _), slot, count in ((first, 0, 4), (second, 1, 2)):
        expected = estimator.predict(images[slot, :count])
        np.testing.assert_array_equal(depths[slot, :count], expected.depth)
        np.testing.assert_array_equal(low, expected.depth_min)
        np.testing.assert_array_equal(high, expected.depth_max)
    assert ("staging", depths.shape) in cuda.log
    [warning] = warnings_in(capsys.readouterr())
    assert "cudaHostRegister" in warning and "CUDA error 801" in warning and "pinned staging" in warning


class NoStreamCuda(FakeCuda):
    def stream(self):
        raise RuntimeError("CUDA error: operation not supported")


def test_refused_copy_stream_copies_on_the_compute_stream(estimator, capsys):
    images, depths = rings(3, seed=3)
    cuda = NoStreamCuda()
    with DepthFeed(estimator, images, depths, cuda=cuda) as feed:
        feed.start(2, 1, 3)
        low, high, _ = feed.finish()
    expected = estimator.predict(images[2, :3])
    np.testing.assert_array_equal(depths[1, :3], expected.depth)
    np.testing.assert_array_equal(low, expected.depth_min)
    assert ("record", "compute-stream") in cuda.log and ("record", "copy-stream") not in cuda.log
    [warning] = warnings_in(capsys.readouterr())
    assert "CUDA stream" in warning and "compute stream" in warning


def test_batch_size_auto_depends_on_the_device():
    assert resolve_batch_size("auto", torch.device("cuda")) == CUDA_BATCH_SIZE
    assert resolve_batch_size("auto", torch.device("cpu")) == 32
    assert resolve_batch_size("auto", None) == 32 and resolve_batch_size(7, torch.device("cuda")) == 7


def test_run_flags_parse_and_refuse_bad_values():
    config = GenerateConfig.from_args(["--demo", "--output-dir", "o", "--workers", "0", "--compile"])
    assert config.run.workers == 0 and config.run.compile and config.run.batch_size == "auto"
    assert GenerateConfig.from_args(["--demo", "--output-dir", "o", "--batch-size", "64"]).run.batch_size == 64
    with pytest.raises(UsageError) as err:
        GenerateConfig.from_args(["--demo", "--output-dir", "o", "--workers", "-1", "--batch-size", "many"])
    assert "--workers -1: use auto or a whole number >= 0" in str(err.value)
    assert "--batch-size many: use auto or a whole number >= 1" in str(err.value)


def test_compile_wraps_the_model_for_one_shape(estimator, monkeypatch, capsys):
    """A real compile of even the tiny model takes ~5 minutes on this 2-core CPU: the call is checked instead."""
    options, ran = [], []

    def compile(model, **given):
        options.append(given)
        return lambda **inputs: ran.append(1) or model(**inputs)

    monkeypatch.setattr(torch, "compile", compile)
    images = rings(2)[0][0]
    expected = estimator.predict(images)
    model = estimator.model
    try:
        depth = compile_estimator(estimator).predict(images).depth
    finally:
        estimator.model = model
    np.testing.assert_array_equal(depth, expected.depth)
    assert options == [{"dynamic": False}] and ran == [1] and warnings_in(capsys.readouterr()) == []


def test_compile_refused_at_the_first_call_runs_the_plain_model(estimator, monkeypatch, capsys):
    """No working C compiler or Triton: torch.compile wraps fine, then its first call raises."""
    def compile(model, **options):
        def refuse(**inputs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx")
        return refuse

    monkeypatch.setattr(torch, "compile", compile)
    images = rings(2, seed=4)[0][0]
    expected = estimator.predict(images)
    model = estimator.model
    try:
        compiled = compile_estimator(estimator)
        first, second = compiled.predict(images), compiled.predict(images)
    finally:
        estimator.model = model
    for prediction in (first, second):
        np.testing.assert_array_equal(prediction.depth, expected.depth)
    [warning] = warnings_in(capsys.readouterr())
    assert warning.startswith("warning: torch.compile refused (RuntimeError: InvalidCxxCompiler")
    assert "running the model uncompiled" in warning


def test_compile_refused_when_wrapping_leaves_the_model_alone(estimator, monkeypatch, capsys):
    def compile(model, **options):
        raise RuntimeError("Dynamo is not supported on Python 3.14+")

    monkeypatch.setattr(torch, "compile", compile)
    model = estimator.model
    assert compile_estimator(estimator).model is model
    [warning] = warnings_in(capsys.readouterr())
    assert "Dynamo is not supported" in warning
