"""Stored depth against transformers' own pipeline("depth-estimation"), end to end.

A 2-process run writes the dataset; for rows from every shard (so from both ranks: shards are dealt
round-robin, shard 1 goes to rank 1) and from several batches of each, the test decodes the stored `fg_bg`
as a user does, runs the pipeline on it with the same local model, and compares with the stored depth PNG
scaled back through `depth_min`/`depth_max`, and with `depth_min`/`depth_max` themselves. The same for the
`backgrounds` config, whose depth is of the stored background image.

The random tiny model's outputs are ~1e-7 (small initial weights through many layers), so the fixture
scales the head's last convolution to make them order 1; the model is otherwise the generator's test model.

Tolerance: the generator resizes the model input with torch's antialiased bicubic, the pipeline with PIL's,
which round a few % of input values differently (see test_depth_parity.py), so the two predictions are not
bit-equal. Measured over all 48 rows of this run: a row's own recomputation at most 2.6% of the range away
(worst pixel; depth_min 0.3%, depth_max 0.6%; backgrounds 1.5%); an adjacent row (same background) at least 41%
away, the background alone instead of the composite at least 40%.
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import SMALL, Generation, run_generate_together

TOLERANCE = 0.06  # of the recomputed prediction's range (max - min)
# 48 samples in shards of 20 and batches of 8: rows from each batch of shard 0 (rank 0), from shard 1
# (rank 1) and from the last, short shard 2 (rank 0).
ROWS = [0, 9, 17, 21, 30, 39, 41, 47]


def _raw_depth(model, side: int) -> torch.Tensor:
    probe = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, side, side)).astype(np.float32))
    with torch.inference_mode():
        return model(pixel_values=probe).predicted_depth


@pytest.fixture(scope="module")
def order_one_model(tmp_path_factory):
    """The tiny random model with its head's last conv scaled so that predictions are of order 1."""
    from transformers import AutoModelForDepthEstimation

    from builder.testing.random_model import save_random_depth_model

    folder = save_random_depth_model(tmp_path_factory.mktemp("model") / "order-one")
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        model.head.conv3.weight /= _raw_depth(model, 56).abs().max()
    model.save_pretrained(folder)
    peak = float(_raw_depth(AutoModelForDepthEstimation.from_pretrained(folder).eval(), 56).abs().max())
    assert 0.5 < peak < 2, f"scaled model's output peak {peak}, expected ~1"
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, order_one_model) -> dict[str, object]:
    """Both runs of this module, side by side: a 2-process run, and one process with 2 worker processes and
    batches of 3 (7 batches per 20-row shard, so the 3 image ring slots and 2 depth slots wrap around twice
    within a shard, filled by workers at their pieces' offsets)."""
    outs = {"two-process": tmp_path_factory.mktemp("depth-e2e") / "out",
            "workers": tmp_path_factory.mktemp("depth-workers") / "out"}
    run_generate_together(Generation(outs["two-process"], *SMALL, "--depth-model", order_one_model, processes=2),
                          Generation(outs["workers"], *SMALL, "--depth-model", order_one_model, "--workers", "2",
                                     "--batch-size", "3"))
    return outs


@pytest.fixture(scope="module")
def two_process_run(runs):
    return runs["two-process"]


@pytest.fixture(scope="module")
def pipe(order_one_model):
    from transformers import pipeline

    depth_pipe = pipeline("depth-estimation", model=str(order_one_model), device="cpu")
    input_size = int(SMALL[SMALL.index("--depth-input-size") + 1])
    depth_pipe.image_processor.size = {"height": input_size, "width": input_size}  # the generator's input size
    return depth_pipe


def samples(out) -> dict[int, dict]:
    """The default rows a user loads, by sample_id (a 2-process run's shards hold them in shard order)."""
    return {row["sample_id"]: row for row in datasets.load_dataset(str(out), "default", split="train")}


def depth_errors(pipe, image: Image.Image, row: dict) -> tuple[float, float, float]:
    """(worst pixel, min, max) differences between the stored depth and the pipeline's, as fractions of the
    pipeline prediction's range."""
    reference = pipe(image)["predicted_depth"].float().numpy()
    low, high = float(reference.min()), float(reference.max())
    png = np.asarray(row["depth"], dtype=np.float64)
    assert row["depth"].mode == "I;16" and png.shape == reference.shape
    stored = row["depth_min"] + png / 65535 * (row["depth_max"] - row["depth_min"])
    span = high - low
    return (float(np.abs(stored - reference).max()) / span, abs(row["depth_min"] - low) / span,
            abs(row["depth_max"] - high) / span)


def assert_depth_matches(pipe, image: Image.Image, row: dict, what: str) -> None:
    pixel, low, high = depth_errors(pipe, image, row)
    assert pixel <= TOLERANCE and low <= TOLERANCE and high <= TOLERANCE, (
        f"{what}: stored depth differs from pipeline('depth-estimation') on the stored image by {pixel:.1%} of "
        f"the range (worst pixel), depth_min by {low:.1%}, depth_max by {high:.1%} (tolerance {TOLERANCE:.0%})")


@pytest.fixture(scope="module")
def worker_run(runs):
    return runs["workers"]


def test_depth_through_worker_rings_is_the_models_depth_of_every_row(worker_run, pipe):
    rows = samples(worker_run)
    assert len(rows) == 48
    for sample_id, row in rows.items():
        assert_depth_matches(pipe, row["fg_bg"], row, f"default row sample_id={sample_id} (2 workers, batches of 3)")


def test_sample_depth_is_the_models_depth_of_the_stored_composite(two_process_run, pipe):
    rows = samples(two_process_run)
    for sample_id in ROWS:
        row = rows[sample_id]
        assert_depth_matches(pipe, row["fg_bg"], row, f"default row sample_id={sample_id}")


def test_background_depth_is_the_models_depth_of_the_stored_background(two_process_run, pipe):
    for row in datasets.load_dataset(str(two_process_run), "backgrounds", split="train"):
        assert_depth_matches(pipe, row["image"], row, f"backgrounds row bg_id={row['bg_id']}")


def test_the_comparison_tells_rows_apart(two_process_run, pipe):
    """The tolerance is far below what a wrong pairing gives: an adjacent row (same background, mostly the same
    batch), or the background alone instead of the composite."""
    rows = samples(two_process_run)
    backgrounds = datasets.load_dataset(str(two_process_run), "backgrounds", split="train")
    for sample_id in ROWS:
        row, neighbour = rows[sample_id], rows[sample_id + 1 if sample_id < 47 else 46]
        assert depth_errors(pipe, neighbour["fg_bg"], row)[0] > 4 * TOLERANCE, sample_id
        assert depth_errors(pipe, backgrounds[row["bg_id"]]["image"], row)[0] > 4 * TOLERANCE, sample_id
