"""verify --depth N: the manifest's depth model run again on N rows per shard, compared with the stored maps.

The stored map is decoded back to raw depth by its storage (builder.contract.depth_storage: `depth_min + png / peak
* (depth_max - depth_min)`, peak 65535, or 255 with --depth-bits 8) and compared with the model's prediction on the
stored image the depth was made from (the decoded composite, or the decoded background). Reruns on the same hardware
and dtype differ by at most 1/65535 of the range (a different CPU thread count changes float summation order), so
the limit below leaves room for other hardware while a map of another row (about 60% of the range away with a random
model) or of the background alone (about 50%) fails. A model that predicts its field of view (Depth Pro): a background's
stored `focal_length_px` is compared with the one it predicts, within the same share of its value."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from builder.contract.depth_kinds import FOCAL_COLUMN
from builder.contract.depth_storage import DepthStorage, depth_storage
from builder.contract.errors import DepthModelError
from builder.contract.settings import Manifest
from builder.rows.configs import DatasetConfig
from builder.verify.layout import Problems, Shard
from builder.verify.reader import expected_rows, iter_rows, rows_with_images

DEPTH_TOLERANCE = 0.02  # of the stored map's range: max abs difference, and depth_min / depth_max each


def load_estimator(manifest: Manifest):
    """The manifest's model, as the generator loaded it (its input size, and the kind of depth the dataset records);
    DepthModelError (exit 2) saying so when it is not available here or no longer outputs that kind."""
    import torch

    from builder.run.depth import DepthEstimator

    if manifest.model is None:
        raise DepthModelError("verify --depth: this dataset was generated with --no-depth; drop --depth")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = manifest.settings
    try:
        estimator = DepthEstimator.load(settings.depth_model, settings.depth_input_size, device, manifest.model.dtype,
                                        settings.resolution, settings.depth_kind)
    except DepthModelError as err:
        raise DepthModelError(
            f"verify --depth: the dataset's depth model {manifest.model.id!r} (revision {manifest.model.revision}) "
            f"is not available here ({err.__cause__ or err}); make it available (the HF cache, the network, or the "
            "local folder manifest.json names) or drop --depth") from err
    if estimator.kind != settings.kind:
        raise DepthModelError(f"verify --depth: the dataset holds {settings.kind.label} depth, but its model "
                              f"{manifest.model.id!r} outputs {estimator.kind.label} depth (from its config): it is "
                              "not the model the dataset was made with; drop --depth")
    return estimator


def pixels(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def chosen_rows(shard: Shard, count: int, seed: int) -> list[dict]:
    chosen = rows_with_images(shard, expected_rows(shard), count, seed + 1)
    return [row for _, rows, flags in iter_rows(shard, chosen) for row, flag in zip(rows, flags) if flag]


def row_depth_problem(row: dict, predicted: np.ndarray, source: str, storage: DepthStorage) -> str | None:
    """Differences as a share of the stored range, or for a constant stored map (depth_min == depth_max) of the
    predicted range; when both are constant, the values must be equal."""
    low, high = float(predicted.min()), float(predicted.max())
    span = float(row["depth_max"]) - float(row["depth_min"])
    stored = storage.raw(pixels(row["depth"]), row["depth_min"], row["depth_max"])
    scale = span if span > 0 else high - low
    if scale == 0:
        if low == float(row["depth_min"]):
            return None
        return f"stored depth is the constant {row['depth_min']} but the model predicts the constant {low}"
    worst = float(np.abs(stored - predicted).max()) / scale
    ends = max(abs(low - row["depth_min"]), abs(high - row["depth_max"])) / scale
    if worst > DEPTH_TOLERANCE or ends > DEPTH_TOLERANCE:
        return (f"depth differs from the model's prediction for this row's {source}: "
                f"max difference {worst:.4f} and depth_min/max {ends:.4f} of the range (limit {DEPTH_TOLERANCE})")
    return None


def shard_depth_problems(config: DatasetConfig, shard: Shard, estimator, count: int, seed: int,
                         depth_bits: int) -> Problems:
    rows = chosen_rows(shard, count, seed)
    if not rows:
        return []
    images = np.stack([pixels(row[config.schema.depth_source]) for row in rows])
    raw, focals = estimator.predict_maps(images)
    raw = raw.float().cpu().numpy()
    focals = [None] * len(rows) if focals is None else focals.float().cpu().numpy()
    problems, storage = [], depth_storage(depth_bits)
    for row, predicted, focal in zip(rows, raw, focals):
        where = f"{shard.relative} {config.key_column} {row[config.key_column]}"
        if problem := row_depth_problem(row, predicted, config.schema.depth_source, storage):
            problems.append((where, problem))
        if focal is not None and FOCAL_COLUMN in row and (problem := focal_problem(row[FOCAL_COLUMN], float(focal))):
            problems.append((where, problem))
    return problems


def focal_problem(stored: float | None, predicted: float) -> str | None:
    """A background's stored focal length against the one its model's field of view gives again."""
    if stored is not None and abs(stored - predicted) <= DEPTH_TOLERANCE * predicted:
        return None
    return (f"{FOCAL_COLUMN} {stored} differs from the {predicted:.3f} px the model's field of view gives by more than "
            f"{DEPTH_TOLERANCE:.0%}")
