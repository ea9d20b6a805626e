"""The accelerator's side of a rank: batches go from the workers' shared-memory ring to the model with at most
one copy (on CUDA the ring is page-locked in place), and depth comes back into the depth ring, double-buffered:
the copy of batch n runs on a side stream while the model computes batch n+1. Also the GPU run settings
(batch size, torch.compile with a fixed batch shape). Each CUDA speed feature the platform refuses falls back to
the plain path with one warning (builder/run/fallback.py)."""

from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np
import torch

from builder.run.depth import DepthEstimator, NonFiniteDepthError, check_finite, scale_on_device
from builder.run.fallback import PlainOnFailure, warn_fallback

CPU_BATCH_SIZE = 32
# V2-Small at 518 in bf16 uses ~60 MB of activations per image: 256 fits easily in 80 GB and keeps the GPU
# saturated; larger batches add no throughput but more latency per batch and more host memory per ring slot.
CUDA_BATCH_SIZE = 256


def resolve_batch_size(value: int | str, device: torch.device | None) -> int:
    """`auto`: 256 on CUDA (kernels saturate the GPU only with large batches), 32 elsewhere (CPU inference runs
    in micro-batches anyway; larger batches only hold more rows in memory)."""
    if value != "auto":
        return int(value)
    return CUDA_BATCH_SIZE if device is not None and device.type == "cuda" else CPU_BATCH_SIZE


def compile_estimator(estimator: DepthEstimator) -> DepthEstimator:
    """torch.compile the model; callers then always pass full batches (DepthFeed pads), so it compiles once.
    torch.compile compiles at the first call: if that (or the wrapping) fails, e.g. no working C compiler or
    Triton, the plain model runs instead."""
    plain, instead = estimator.model, "running the model uncompiled"
    try:
        compiled = torch.compile(plain, dynamic=False)
    except Exception as err:  # e.g. a Python version Dynamo does not support
        warn_fallback("torch.compile", err, instead)
        return estimator
    estimator.model = PlainOnFailure(compiled, plain, "torch.compile", instead)
    return estimator


class CudaCalls:
    """Every CUDA call the feed makes, in one place, so CPU tests can stand in for them."""

    def register(self, array: np.ndarray) -> None:
        check(torch.cuda.cudart().cudaHostRegister(array.ctypes.data, array.nbytes, 0), "cudaHostRegister")

    def unregister(self, array: np.ndarray) -> None:
        check(torch.cuda.cudart().cudaHostUnregister(array.ctypes.data), "cudaHostUnregister")

    def pinned_buffer(self, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def stream(self):
        return torch.cuda.Stream()

    def current_stream(self):
        return torch.cuda.current_stream()

    def event(self):
        return torch.cuda.Event()

    def wait_for_compute(self, stream) -> None:
        stream.wait_stream(torch.cuda.current_stream())

    def use(self, stream):
        return torch.cuda.stream(stream)

    def keep_alive(self, tensor: torch.Tensor, stream) -> None:
        tensor.record_stream(stream)  # the allocator must not reuse it before the side stream's copy is done


def check(status, call: str) -> None:
    code = getattr(status, "value", status)
    if code != 0:
        raise RuntimeError(f"{call} failed with CUDA error {status}")


class InFlight(NamedTuple):
    """A batch queued by DepthFeed.start: its copy's event (None on CPU), minima, maxima, finite flags (or the
    error to raise), where the maps wait when the ring is not page-locked: (staging buffer, ring slot), and the
    focal lengths of a model that predicts its field of view."""

    event: object
    low: np.ndarray | None
    high: np.ndarray | None
    finite: object
    staged: tuple | None = None
    focal: np.ndarray | None = None


class DepthRanges(NamedTuple):
    """A finished batch's per-image minima and maxima, and focal lengths in pixels at R (None: the model predicts no
    field of view)."""

    low: np.ndarray
    high: np.ndarray
    focal: np.ndarray | None


class DepthFeed:
    """Depth of ring slots, in order: `start(image_slot, depth_slot, count)` queues a batch, `finish()` returns
    the oldest one's `DepthRanges` once its maps are in the depth ring. On CPU `start` runs the model at once.

    On CUDA the rings are page-locked in place and the maps are copied back on a side stream. Where the platform
    refuses either, the feed warns once and goes on: the maps land in a pinned staging buffer and are copied into
    the ring by finish() (the model's input is staged by DepthEstimator.preprocess), or they are copied on the
    compute stream."""

    def __init__(self, estimator: DepthEstimator, images: np.ndarray, depths: np.ndarray, pad: bool = False,
                 cuda: CudaCalls | None = None):
        self.estimator, self.images, self.depths, self.pad = estimator, images, depths, pad
        self.cuda = cuda if cuda is not None else (CudaCalls() if estimator.device.type == "cuda" else None)
        self.pending: collections.deque[InFlight] = collections.deque()
        self.registered: list[np.ndarray] = []
        self.staging: torch.Tensor | None = None  # the depth ring's shape, when the ring is not page-locked
        if self.cuda is not None:
            self._page_lock(images, depths)
            self.copies = self._copy_stream()
            self.events = [self.cuda.event() for _ in range(len(depths))]

    def _page_lock(self, images: np.ndarray, depths: np.ndarray) -> None:
        try:
            for array in (images, depths):
                self.cuda.register(array)
                self.registered.append(array)
        except RuntimeError as err:
            warn_fallback("page-locking the worker rings (cudaHostRegister)", err,
                          "copying through pinned staging buffers instead")
            self.unpin()
            self.staging = self.cuda.pinned_buffer(depths.shape, torch.int16)

    def _copy_stream(self):
        try:
            return self.cuda.stream()
        except RuntimeError as err:
            warn_fallback("a CUDA stream for the depth copies", err, "copying on the compute stream")
            return self.cuda.current_stream()

    def __enter__(self) -> "DepthFeed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def model_input(self, image_slot: int, count: int) -> np.ndarray:
        """The slot's first `count` images, or the whole slot when compiled (one shape; the extra rows are
        whatever the slot held before, and their predictions are dropped)."""
        return self.images[image_slot] if self.pad else self.images[image_slot, :count]

    def start(self, image_slot: int, depth_slot: int, count: int) -> None:
        images = self.model_input(image_slot, count)
        if self.cuda is None:
            try:
                prediction = self.estimator.predict(images)
            except NonFiniteDepthError as err:  # raised by finish(), for its batch, like the CUDA path's
                self.pending.append(InFlight(None, None, None, err))
                return
            self.depths[depth_slot, :count] = prediction.depth[:count]
            focal = None if prediction.focal is None else prediction.focal[:count]
            self.pending.append(InFlight(None, prediction.depth_min[:count], prediction.depth_max[:count], None,
                                         focal=focal))
            return
        raw, focal = self.estimator.predict_maps(images)
        scaled, low, high, finite = scale_on_device(raw[:count])
        # int16 keeps the uint16 bit patterns; the finite flags (and focal lengths) travel with the ranges, checked
        # in finish()
        maps = scaled.to(torch.int16)
        ranges = torch.stack([low, high, finite.float(), *([] if focal is None else [focal[:count].float()])])
        ring = self.depths[depth_slot, :count].view(np.int16)
        host = torch.from_numpy(ring) if self.staging is None else self.staging[depth_slot, :count]
        host_ranges = torch.empty(ranges.shape, dtype=torch.float32, pin_memory=ranges.is_cuda)
        self.cuda.wait_for_compute(self.copies)
        with self.cuda.use(self.copies):
            host.copy_(maps, non_blocking=True)
            host_ranges.copy_(ranges, non_blocking=True)
            event = self.events[depth_slot]
            event.record(self.copies)
        for tensor in (maps, ranges):
            self.cuda.keep_alive(tensor, self.copies)
        staged = None if self.staging is None else (host, ring)
        self.pending.append(InFlight(event, *(host_ranges[i].numpy() for i in range(3)), staged,
                                     host_ranges[3].numpy() if focal is not None else None))

    def finish(self) -> DepthRanges:
        """The oldest batch's minima, maxima (and focal lengths); NonFiniteDepthError if a map of it was not
        finite."""
        batch = self.pending.popleft()
        if batch.event is not None:
            batch.event.synchronize()
        if isinstance(batch.finite, NonFiniteDepthError):
            raise batch.finite
        if batch.finite is not None:
            check_finite(batch.finite)
        if batch.staged is not None:
            staging, ring = batch.staged
            ring[...] = staging.numpy()
        focal = None if batch.focal is None else batch.focal.astype(np.float32)
        return DepthRanges(batch.low.astype(np.float32), batch.high.astype(np.float32), focal)

    def unpin(self) -> None:
        while self.registered:
            self.cuda.unregister(self.registered.pop())

    def close(self) -> None:
        """Wait for copies still in flight, then unpin the rings (before the workers' pool releases them)."""
        while self.pending:
            event = self.pending.popleft().event
            if event is not None:
                event.synchronize()
        self.unpin()
