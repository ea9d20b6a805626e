"""A constant depth prediction (a blank or flat image; here a model whose output layer is zeroed) is a legitimate
output: stored as depth_min == depth_max with an all-zero PNG, and accepted by verify, `verify --depth`, the
statistics, the card and the training loader."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from builder.train.loader import torch_dataset
from tests.conftest import SMALL, read_config, run_generate, run_verify


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """The tiny random model with its last convolution giving -1 everywhere: ReLU makes every map exactly 0."""
    from transformers import AutoModelForDepthEstimation

    from builder.testing.random_model import save_random_depth_model

    folder = save_random_depth_model(tmp_path_factory.mktemp("model") / "constant")
    model = AutoModelForDepthEstimation.from_pretrained(folder)
    with torch.no_grad():
        model.head.conv3.weight.zero_()
        model.head.conv3.bias.fill_(-1.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory, constant_model):
    out = tmp_path_factory.mktemp("constant") / "out"
    run_generate(out, *SMALL, "--depth-model", str(constant_model), "--validation-backgrounds", "1")
    return out


def test_constant_maps_are_stored_as_all_zero_pngs(constant_run):
    for config in ("default", "backgrounds"):
        table = read_config(constant_run, config)
        assert table.column("depth_min").to_pylist() == table.column("depth_max").to_pylist()
        assert set(table.column("depth_min").to_pylist()) == {0.0}
        for cell in table.column("depth").to_pylist():
            assert not np.asarray(Image.open(io.BytesIO(cell["bytes"]))).any()
    depth = json.loads((constant_run / "stats.json").read_text())["kinds"]["depth"]
    assert depth["mean"] == [0.0] and depth["std"] == [0.0]


def test_verify_and_verify_depth_accept_them(constant_run):
    full = run_verify(constant_run)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    rerun = run_verify(constant_run, "--depth", "3")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]


def test_the_card_says_how_to_read_them(constant_run):
    assert "depth_min == depth_max" in (constant_run / "README.md").read_text()


@pytest.mark.parametrize("split", ["train", "validation"])
@pytest.mark.parametrize("mode", ["unit", "raw"])
def test_the_training_loader_gives_finite_zeros(constant_run, split, mode):
    rows = list(torch_dataset(constant_run, split, depth=mode, columns=["depth"]))
    assert rows and all(torch.equal(row["depth"], torch.zeros_like(row["depth"])) for row in rows)


def png16(levels: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(levels.astype(np.uint16)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue()}


def test_verify_depth_compares_constant_maps_by_value():
    from builder.contract.depth_storage import depth_storage
    from builder.verify.depth import row_depth_problem

    row = {"depth": png16(np.zeros((4, 4))), "depth_min": 0.5, "depth_max": 0.5}
    assert row_depth_problem(row, np.full((4, 4), 0.5, np.float32), "fg_bg", depth_storage(16)) is None
    assert "constant 0.75" in row_depth_problem(row, np.full((4, 4), 0.75, np.float32), "fg_bg", depth_storage(16))
    ramp = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert "max difference" in row_depth_problem(row, ramp, "fg_bg", depth_storage(16))
