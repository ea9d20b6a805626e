"""A rank's CPU work in worker processes: Pillow's encoders hold the GIL, so threads give a rank ~1.3 cores
whatever it is given. Workers start once per run (spawn: never fork a process that imported torch), each holds
the RenderContext, and takes only (config name, keys, ring slot). They write the model's input pixels straight
into a shared-memory ring the main process hands to the accelerator, and PNG-encode depth maps from a second
ring while the model runs on the next batch. This module imports no torch (workers never load it)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import secrets
import signal
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import shared_memory

import numpy as np

from builder.contract.depth_storage import DepthStorage, depth_storage
from builder.contract.errors import FgbgError
from builder.rows.encode import encode_depth, image_cell
from builder.rows.render import RenderContext
from builder.rows.stats import StatsBook

# config name -> (its row renderer, its image columns' peak values): what a worker needs of the config registry,
# handed over at start so workers never import it (it imports `datasets`: seconds per worker)
Recipes = Mapping[str, tuple[Callable, dict[str, int]]]
IMAGE_SLOTS = 3  # workers fill one slot while the accelerator reads the next and the one before may still copy
DEPTH_SLOTS = 2  # workers encode one batch's depth while the next batch's lands in the other


def pieces(items, workers: int) -> list:
    """`items` cut into at most `workers` contiguous slices: one task per worker, not one per row."""
    step = max(1, -(-len(items) // max(1, workers)))
    return [items[s:s + step] for s in range(0, len(items), step)]


SHM_PREFIX = "fgbg-ring"
SHM_FOLDER = "/dev/shm"


def ring_name() -> str:
    """Names carry the owner's pid, so a later run can tell the rings of a rank that was SIGKILLed together with
    its whole process group (then no process is left to unlink them) from those of a live one."""
    return f"{SHM_PREFIX}-{os.getpid()}-{secrets.token_hex(4)}"


def sweep_stale_rings() -> list[str]:
    """Unlink the rings of ranks that no longer exist; returns their names."""
    swept = []
    for name in os.listdir(SHM_FOLDER) if os.path.isdir(SHM_FOLDER) else []:
        parts = name.split("-")
        if name.startswith(SHM_PREFIX + "-") and len(parts) == 4 and parts[2].isdigit() and not _alive(int(parts[2])):
            try:
                os.unlink(os.path.join(SHM_FOLDER, name))
                swept.append(name)
            except FileNotFoundError:  # another rank swept it first
                pass
    return swept


def check_room(nbytes: int) -> None:
    """Shared memory is allocated as workers write: too small a /dev/shm (Docker's default is 64 MB) would
    kill a worker with SIGBUS mid-run, so refuse up front."""
    if not os.path.isdir(SHM_FOLDER):
        return
    stats = os.statvfs(SHM_FOLDER)
    free = stats.f_bavail * stats.f_frsize
    if free < nbytes:
        raise FgbgError(f"{SHM_FOLDER} has {free / 2**20:.0f} MB free but the worker rings need "
                        f"{nbytes / 2**20:.0f} MB: lower --batch-size, run with --workers 0, or give the container "
                        "more shared memory (docker run --shm-size 2g)")


def file_size_limit() -> float:
    """RLIMIT_FSIZE: a shared-memory segment is a file, and creating one larger than this fails (EFBIG)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return float("inf") if soft == resource.RLIM_INFINITY else soft


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ring:
    """`slots` arrays of one shape in one block: shared memory between processes, or plain memory in-process."""

    def __init__(self, shape: tuple, dtype, shared: bool, name: str | None = None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        nbytes = max(1, int(np.prod(self.shape)) * self.dtype.itemsize)
        self.memory = (shared_memory.SharedMemory(name=name or ring_name(), create=name is None,
                                                  size=nbytes if name is None else 0) if shared else None)
        buffer = self.memory.buf if self.memory else bytearray(nbytes)
        self.array = np.ndarray(self.shape, self.dtype, buffer=buffer)

    @property
    def spec(self) -> tuple:
        """What a worker needs to attach to it."""
        return self.shape, self.dtype.str, self.memory.name if self.memory else None

    @classmethod
    def attach(cls, spec: tuple) -> "Ring":
        shape, dtype, name = spec
        return cls(shape, dtype, shared=name is not None, name=name)

    def close(self, unlink: bool) -> None:
        if self.memory is None:
            return
        self.array = None  # the buffer cannot be released while a view exports it
        self.memory.close()
        if unlink:
            self.memory.unlink()


@dataclasses.dataclass
class Workshop:
    """The state of one worker: the context rows are a function of, the configs' renderers, and the two rings."""

    ctx: RenderContext
    recipes: Recipes
    images: Ring
    depths: Ring

    def render(self, config_name: str, keys: list[int], slot: int, offset: int) -> tuple[list[dict], StatsBook, int]:
        """Rows of the keys with their statistics; model inputs go to images[slot, offset:]; returns how many."""
        render_row, peaks = self.recipes[config_name]
        stats, rows, count = StatsBook(peaks), [], 0
        for key in keys:
            row, image = render_row(self.ctx, key, stats)
            rows.append(row)
            if image is not None:
                self.images.array[slot, offset + count] = image
                count += 1
        return rows, stats, count

    def encode_depth(self, config_name: str, slot: int, start: int, stop: int) -> tuple[list[dict], StatsBook]:
        """Image cells of depths[slot, start:stop] as PNGs of `--depth-bits`, with their statistics."""
        stats, cells = StatsBook(self.recipes[config_name][1]), []
        storage = depth_storage(self.ctx.settings.depth_bits)
        for depth in self.depths.array[slot, start:stop]:
            cells.append(depth_cell(storage, depth, stats))
        return cells, stats


def depth_cell(storage: DepthStorage, depth: np.ndarray, stats: StatsBook) -> dict:
    """The `depth` image cell of one map of the estimator's 16-bit levels, its statistics added to `stats`."""
    levels = storage.levels(depth)
    data = encode_depth(levels)
    stats["depth"].add(levels, len(data))
    return image_cell(data)


_WORKSHOP: Workshop | None = None  # set once in each worker process by _start_worker


def _start_worker(ctx: RenderContext, recipes: Recipes, image_spec: tuple, depth_spec: tuple, rank_pid: int) -> None:
    """Ctrl-C goes to the whole process group: the main process alone decides to stop, then shuts us down."""
    global _WORKSHOP
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(rank_pid)
    _WORKSHOP = Workshop(ctx, recipes, Ring.attach(image_spec), Ring.attach(depth_spec))


def _die_with_parent(rank_pid: int) -> None:
    """Linux: a worker is killed when its rank dies, even by SIGKILL (no orphan keeps computing). A rank that died
    while this worker was still starting sent no signal: then the worker is already an orphan and leaves at once
    (else it would wait forever on a queue whose lock a killed sibling may hold)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != rank_pid:
        os._exit(1)


def _in_worker(method: str, *args):
    return getattr(_WORKSHOP, method)(*args)


class WorkerPool:
    """The worker processes of one rank and their rings; a context manager that leaves no process or shared
    memory behind, however the run ends."""

    def __init__(self, ctx: RenderContext, recipes: Recipes, workers: int, batch_size: int):
        side = ctx.settings.resolution
        nbytes = (IMAGE_SLOTS * 3 + DEPTH_SLOTS * 2) * batch_size * side * side
        if workers > 0 and nbytes > file_size_limit():
            print(f"note: the file-size limit (ulimit -f) is below the {nbytes / 2**20:.0f} MB of shared memory "
                  "the worker processes need: rendering in this process instead", file=sys.stderr, flush=True)
            workers = 0
        self.workers = workers
        shared = workers > 0
        if shared:
            sweep_stale_rings()
            check_room(nbytes)
        self.executor, self.rings = None, []
        try:
            self.images = self._ring((IMAGE_SLOTS, batch_size, side, side, 3), np.uint8, shared)
            self.depths = self._ring((DEPTH_SLOTS, batch_size, side, side), np.uint16, shared)
            self.workshop = Workshop(ctx, recipes, self.images, self.depths)  # used in-process when workers == 0
            if shared:
                fresh = dataclasses.replace(ctx)  # no cached properties: each worker builds its own
                self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_start_worker,
                                                    initargs=(fresh, dict(recipes), self.images.spec, self.depths.spec,
                                                              os.getpid()))
        except BaseException:
            self.close()
            raise

    def _ring(self, shape: tuple, dtype, shared: bool) -> Ring:
        self.rings.append(Ring(shape, dtype, shared))
        return self.rings[-1]

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, config_name: str, keys: list[int], slot: int) -> list[Future]:
        """Futures of (rows, stats, images written), one per contiguous piece, in key order."""
        futures, offset = [], 0
        for piece in pieces(keys, self.workers):
            futures.append(self._submit("render", config_name, piece, slot, offset))
            offset += len(piece)
        return futures

    def encode_depth(self, config_name: str, slot: int, count: int) -> list[Future]:
        """Futures of (depth cells, stats), one per contiguous piece of depths[slot, :count]."""
        return [self._submit("encode_depth", config_name, slot, part.start, part.stop)
                for part in pieces(range(count), self.workers)]

    def _submit(self, method: str, *args) -> Future:
        """A worker's task, or with workers=0 the same task run at once here (debugging; fgbg_depth.FgBgDepth)."""
        if self.executor is not None:
            return self.executor.submit(_in_worker, method, *args)
        future = Future()
        try:
            future.set_result(getattr(self.workshop, method)(*args))
        except Exception as err:  # raised from .result(), as a worker's error is
            future.set_exception(err)
        return future

    def close(self) -> None:
        """Cancel queued tasks, wait for running ones (one piece of a batch at most), join the workers, then
        release the rings."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        while self.rings:
            self.rings.pop().close(unlink=True)
