"""The accelerator's side of a rank: batches go from the workers' shared-memory ring to the model with at most
one copy (on CUDA the ring is page-locked in place), and depth comes back into the depth ring, double-buffered:
the copy of batch n runs on a side stream while the model computes batch n+1. Also the GPU run settings
(batch size, torch.compile with a fixed batch shape, cuDNN autotuning)."""

from __future__ import annotations

import collections

import numpy as np
import torch

from builder.depth import DepthEstimator, NonFiniteDepthError, check_finite, scale_on_device

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


def tune_backend(device: torch.device | None) -> None:
    """cuDNN picks the fastest convolution kernels for our one input shape (every batch has the same shape)."""
    if device is not None and device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_estimator(estimator: DepthEstimator) -> DepthEstimator:
    """torch.compile the model; callers then always pass full batches (DepthFeed pads), so it compiles once."""
    estimator.model = torch.compile(estimator.model, dynamic=False)
    return estimator


class CudaCalls:
    """Every CUDA call the feed makes, in one place, so CPU tests can stand in for them."""

    def register(self, array: np.ndarray) -> None:
        check(torch.cuda.cudart().cudaHostRegister(array.ctypes.data, array.nbytes, 0), "cudaHostRegister")

    def unregister(self, array: np.ndarray) -> None:
        check(torch.cuda.cudart().cudaHostUnregister(array.ctypes.data), "cudaHostUnregister")

    def stream(self):
        return torch.cuda.Stream()

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
        raise RuntimeError(f"{call} failed with CUDA error {status}: the ring could not be page-locked; "
                           "run with --workers 0 to use ordinary pinned copies")


class DepthFeed:
    """Depth of ring slots, in order: `start(image_slot, depth_slot, count)` queues a batch, `finish()` returns
    the oldest one's (minima, maxima) once its maps are in the depth ring. On CPU `start` runs the model at once."""

    def __init__(self, estimator: DepthEstimator, images: np.ndarray, depths: np.ndarray, pad: bool = False,
                 cuda: CudaCalls | None = None):
        self.estimator, self.images, self.depths, self.pad = estimator, images, depths, pad
        self.cuda = cuda if cuda is not None else (CudaCalls() if estimator.device.type == "cuda" else None)
        self.pending: collections.deque = collections.deque()
        self.registered: list[np.ndarray] = []
        if self.cuda is not None:
            for array in (images, depths):
                self.cuda.register(array)
                self.registered.append(array)
            self.copies = self.cuda.stream()
            self.events = [self.cuda.event() for _ in range(len(depths))]

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
                self.pending.append((None, None, None, err))
                return
            self.depths[depth_slot, :count] = prediction.depth[:count]
            self.pending.append((None, prediction.depth_min[:count], prediction.depth_max[:count], None))
            return
        scaled, low, high, finite = scale_on_device(self.estimator.predict_raw(images)[:count])
        # int16 keeps the uint16 bit patterns; the finite flags travel with the ranges, checked in finish()
        maps, ranges = scaled.to(torch.int16), torch.stack([low, high, finite.float()])
        host = torch.from_numpy(self.depths[depth_slot, :count].view(np.int16))
        host_ranges = torch.empty(ranges.shape, dtype=torch.float32, pin_memory=ranges.is_cuda)
        self.cuda.wait_for_compute(self.copies)
        with self.cuda.use(self.copies):
            host.copy_(maps, non_blocking=True)
            host_ranges.copy_(ranges, non_blocking=True)
            event = self.events[depth_slot]
            event.record(self.copies)
        for tensor in (maps, ranges):
            self.cuda.keep_alive(tensor, self.copies)
        self.pending.append((event, host_ranges[0].numpy(), host_ranges[1].numpy(), host_ranges[2].numpy()))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The oldest batch's (minima, maxima); NonFiniteDepthError if a map of it was not finite."""
        event, low, high, finite = self.pending.popleft()
        if event is not None:
            event.synchronize()
        if isinstance(finite, NonFiniteDepthError):
            raise finite
        if finite is not None:
            check_finite(finite)
        return low.astype(np.float32), high.astype(np.float32)

    def close(self) -> None:
        """Wait for copies still in flight, then unpin the rings (before the workers' pool releases them)."""
        while self.pending:
            event = self.pending.popleft()[0]
            if event is not None:
                event.synchronize()
        while self.registered:
            self.cuda.unregister(self.registered.pop())
