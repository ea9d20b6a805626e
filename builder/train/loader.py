"""A PyTorch training loader: `(bg, fg_bg) -> (mask, depth)` rows as normalised float tensors.

`torch_dataset(path_or_repo)` reads a generator output folder (Arrow IPC stream shards), a `--export-only`
Parquet folder, or a Hub dataset repo (Parquet streamed through `HfFileSystem`), all through builder.store.reader.
The unit of parallel work is below the file: one record batch of an Arrow shard, or one row group of a Parquet
file, so any dataset keeps every DataLoader worker on every rank busy. datasets 5.2 can reshard Parquet by row
group, but not Arrow stream files, and `split_dataset_by_node` falls back to every node reading everything and
skipping rows when the shards do not divide evenly; hence the small unit distribution below (`assign_units`).
"""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from builder.contract.depth_storage import STORAGES, storage_of_mode
from builder.rows.encode import decode_png_gray
from builder.store.reader import DatasetReader, open_dataset

DEPTH_MODES = ("unit", "raw")
IMAGE_OUTPUTS = ("bg", "fg_bg", "mask", "depth", "alpha", "amodal_mask")
ID_OUTPUTS = ("sample_id", "bg_id", "fg_id")
TENSOR_OUTPUTS = ("occlusion",)  # --placement-mode ground: a float32 scalar tensor per row
INSTANCE_OUTPUTS = ("instance_mask",)  # --objects above 1: 1 x R x R int64, k on object k, 0 background
MIX_UNITS = 8  # units whose rows a worker shuffles together: consecutive rows share a background


def channel_stats(stats: dict, kind: str) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) in [0, 1] of the TRAIN split, which every split is normalised with: the
    per-split table when stats.json has one, else the whole dataset's (which is train-only today)."""
    kinds = stats.get("splits", {}).get("train", {}).get("kinds") or stats["kinds"]
    return kinds[kind]["mean"], kinds[kind]["std"]


# -- who reads what ---------------------------------------------------------------------------------------

def assign_units(num_units: int, rank: int, world_size: int, worker: int, num_workers: int,
                 seed: int, epoch: int, shuffle: bool) -> list[int]:
    """Indices of the units one DataLoader worker of one rank reads in an epoch, in reading order.

    All (rank, worker) slots deal the same (seeded, per-epoch) permutation round-robin, so together they
    read every unit exactly once and no slot gets more than one unit more than another. Slots are numbered
    worker-major, so the leftover units go to different ranks and ranks differ by at most one unit."""
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ValueError(f"rank {rank} of {world_size} / worker {worker} of {num_workers} is out of range")
    order = np.random.default_rng([seed, epoch]).permutation(num_units) if shuffle else np.arange(num_units)
    slot, slots = worker * world_size + rank, world_size * num_workers
    return order[slot::slots].tolist()


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; else an initialised torch.distributed group; else RANK / WORLD_SIZE; else 0 of 1."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if rank is not None or world_size is not None:
        raise ValueError("give both rank and world_size, or neither (then torch.distributed or RANK/WORLD_SIZE)")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# -- rows as tensors --------------------------------------------------------------------------------------

def _pixels(data: bytes, mode: str) -> np.ndarray:
    """The image's pixels in `mode`; our own 8-bit masks skip Pillow (`decode_png_gray`: the same values)."""
    if mode == "L" and (pixels := decode_png_gray(data)) is not None and pixels.dtype == np.uint8:
        return pixels
    image = Image.open(io.BytesIO(data))
    return np.asarray(image if image.mode == mode else image.convert(mode))


class Normaliser:
    """(x / 255 - mean) / std per channel, as one multiply-add on the uint8 pixels."""

    def __init__(self, mean: list[float], std: list[float]):
        std_t, mean_t = torch.tensor(std, dtype=torch.float64), torch.tensor(mean, dtype=torch.float64)
        self.scale = (1 / (255 * std_t)).float().view(-1, 1, 1)
        self.offset = (-mean_t / std_t).float().view(-1, 1, 1)

    def __call__(self, data: bytes) -> torch.Tensor:
        chw = np.ascontiguousarray(_pixels(data, "RGB").transpose(2, 0, 1))  # transposing bytes beats floats
        return torch.from_numpy(chw).to(torch.float32).mul_(self.scale).add_(self.offset)


def decode_unit_image(data: bytes) -> torch.Tensor:
    """An 8-bit single-channel PNG (mask, alpha) as 1 x R x R float32 in [0, 1]."""
    return torch.from_numpy(_pixels(data, "L").astype(np.float32)).unsqueeze(0).div_(255)


def decode_instance_mask(data: bytes) -> torch.Tensor:
    """`instance_mask` (PNG L) as 1 x R x R int64 object ids: usable as indices and class targets as is."""
    return torch.from_numpy(_pixels(data, "L").astype(np.int64)).unsqueeze(0)


def decode_depth(data: bytes, low: float, high: float, mode: str) -> torch.Tensor:
    """The depth PNG (16-bit, or 8-bit with --depth-bits 8) as 1 x R x R float32: per-image [0, 1], or the
    model's raw output (disparity, or metres). Our own PNGs skip Pillow (`decode_png_gray`: the same levels, 3x
    faster)."""
    levels = decode_png_gray(data)
    if levels is not None:
        depth = torch.from_numpy(STORAGES[8 * levels.dtype.itemsize].unit(levels)).unsqueeze(0)
    else:
        image = Image.open(io.BytesIO(data))
        depth = torch.from_numpy(storage_of_mode(image.mode).unit(np.asarray(image))).unsqueeze(0)
    return depth if mode == "unit" else depth.mul_(high - low).add_(low)


def _image_bytes(table: pa.Table, name: str) -> list[bytes]:
    return table.column(name).combine_chunks().field("bytes").to_pylist()


def _columns_for(outputs: tuple[str, ...]) -> list[str]:
    """The stored columns that the requested outputs are made from."""
    needed = {"bg": ["bg_id"], "depth": ["depth", "depth_min", "depth_max"]}
    return sorted({column for name in outputs for column in needed.get(name, [name])})


def choose_outputs(columns, stored: list[str]) -> tuple[str, ...]:
    """The requested outputs (default: all the dataset has), refusing any it cannot give."""
    available = [name for name in IMAGE_OUTPUTS + INSTANCE_OUTPUTS + TENSOR_OUTPUTS + ID_OUTPUTS
                 if name == "bg" or name in stored]
    if columns is None:
        return tuple(available)
    missing = [name for name in columns if name not in available]
    if missing:
        raise ValueError(f"columns {missing} are not available in this dataset; choose from {available}"
                         + (" (it was generated with --no-depth)" if "depth" in missing else ""))
    return tuple(columns)


# -- the dataset ------------------------------------------------------------------------------------------

class FgBgDepthDataset(torch.utils.data.IterableDataset):
    """Rows of the `default` config as dicts of tensors; see `torch_dataset`."""

    def __init__(self, location: DatasetReader, split: str, depth: str, shuffle: bool, seed: int, columns,
                 rank: int | None, world_size: int | None, mix_units: int):
        if depth not in DEPTH_MODES:
            raise ValueError(f"depth={depth!r}: choose one of {DEPTH_MODES}")
        self.files = location.split_files("default", split)
        self.units = self.files.units()
        self.outputs = choose_outputs(columns, self.files.schema().names)
        stats = location.stats()
        self.normalisers = {kind: Normaliser(*channel_stats(stats, kind)) for kind in ("bg", "fg_bg")}
        self.backgrounds = _background_bytes(location, split) if "bg" in self.outputs else {}
        self.depth, self.shuffle, self.seed, self.mix_units = depth, shuffle, seed, mix_units
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.epoch = 0

    @property
    def num_rows(self) -> int:
        return sum(unit.rows for unit in self.units)

    def set_epoch(self, epoch: int) -> None:
        """A new shuffled order per epoch. DataLoader copies the dataset into its workers when an epoch's
        iteration starts, so call this before `iter(loader)` and keep persistent_workers=False."""
        self.epoch = epoch

    def my_units(self) -> list[int]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return assign_units(len(self.units), self.rank, self.world_size, worker, num_workers,
                            self.seed, self.epoch, self.shuffle)

    def __iter__(self):
        mine, bg_cache = self.my_units(), {}
        for start in range(0, len(mine), self.mix_units):
            group = mine[start:start + self.mix_units]
            table = pa.concat_tables([self.files.read(self.units[i], _columns_for(self.outputs)) for i in group])
            order = np.arange(table.num_rows)
            if self.shuffle:
                order = np.random.default_rng([self.seed, self.epoch, group[0]]).permutation(order)
            rows = {name: _image_bytes(table, name) if name in IMAGE_OUTPUTS + INSTANCE_OUTPUTS
                    else table.column(name).to_pylist()
                    for name in table.column_names}
            for i in order:
                yield self._tensors(rows, int(i), bg_cache)

    def _tensors(self, rows: dict, i: int, bg_cache: dict) -> dict:
        out = {}
        for name in self.outputs:
            if name == "bg":
                bg_id = rows["bg_id"][i]
                if bg_id not in bg_cache:
                    bg_cache[bg_id] = self.normalisers["bg"](self.backgrounds[bg_id])
                out[name] = bg_cache[bg_id].clone()  # callers may modify what they get in place
            elif name == "fg_bg":
                out[name] = self.normalisers["fg_bg"](rows[name][i])
            elif name == "depth":
                out[name] = decode_depth(rows[name][i], rows["depth_min"][i], rows["depth_max"][i], self.depth)
            elif name in IMAGE_OUTPUTS:
                out[name] = decode_unit_image(rows[name][i])
            elif name in INSTANCE_OUTPUTS:
                out[name] = decode_instance_mask(rows[name][i])
            elif name in TENSOR_OUTPUTS:
                out[name] = torch.tensor(rows[name][i], dtype=torch.float32)
            else:
                out[name] = rows[name][i]
        return out


def _background_bytes(location: DatasetReader, split: str) -> dict[int, bytes]:
    """bg_id -> encoded background of the `backgrounds` config (one row per background: small)."""
    files = location.split_files("backgrounds", split)
    table = pa.concat_tables([files.read(unit, ["bg_id", "image"]) for unit in files.units()])
    return dict(zip(table.column("bg_id").to_pylist(), _image_bytes(table, "image")))


def torch_dataset(path_or_repo: str | os.PathLike, split: str = "train", *, depth: str = "unit",
                  shuffle: bool = False, seed: int = 0, columns=None, rank: int | None = None,
                  world_size: int | None = None, revision: str | None = None,
                  mix_units: int = MIX_UNITS) -> FgBgDepthDataset:
    """A `torch.utils.data.IterableDataset` over the `default` rows of an fgbg-depth dataset.

    Each row is a dict: `bg`, `fg_bg` (3 x R x R float32, normalised with the train split's per-channel
    mean/std from the dataset's stats.json), `mask` (1 x R x R, 0 or 1), `depth` (1 x R x R: `depth="unit"`
    gives png / peak in [0, 1] (peak 65535, or 255 with --depth-bits 8), `depth="raw"` the model's output
    depth_min + png / peak * (max - min): relative disparity, or metres for a metric model (the card's
    `depth_kind`); absent without depth), `alpha` when stored, `amodal_mask` (1 x R x R)
    and `occlusion` (a float32 scalar) with `--placement-mode ground`, `instance_mask` (1 x R x R int64 object
    ids) with `--objects` above 1, and `sample_id`, `bg_id`, `fg_id` (ints). `columns` picks a subset. With
    DataLoader workers and ranks (explicit, else torch.distributed, else RANK / WORLD_SIZE)
    every row is read exactly once per epoch; `shuffle=True` gives a seeded order that changes with
    `set_epoch`. `mix_units` record batches / row groups are shuffled together per worker.
    """
    return FgBgDepthDataset(open_dataset(path_or_repo, revision), split, depth, shuffle, seed, columns,
                            rank, world_size, mix_units)
