"""builder.train.data_value: option parsing, dataset sharing and the table (the full run is scripts/data_value.py,
measured in docs/training.md)."""

from __future__ import annotations

import pytest
import torch

from builder.contract.errors import UsageError
from builder.train.data_value import ConstantPrediction, DataOption, markdown_table


def test_an_option_is_a_name_and_generate_arguments():
    option = DataOption.parse("ground = --augment realistic --placement-mode 'ground'")
    assert option == DataOption("ground", ("--augment", "realistic", "--placement-mode", "ground"))
    assert option.folder() == DataOption.parse("other=--augment realistic --placement-mode ground").folder()
    assert option.folder() != DataOption.parse("realistic=--augment realistic").folder()


@pytest.mark.parametrize("text", ["--augment realistic", "=--augment none"])
def test_an_option_without_a_name_is_refused(text):
    with pytest.raises(UsageError, match="NAME=GENERATE_ARGUMENTS"):
        DataOption.parse(text)


def test_table_has_a_row_per_option_and_three_metrics_per_evaluation_set():
    scores = {"rows": 48, "mask_iou": 0.8618, "depth_absrel": None, "depth_delta1": 0.4243}
    report = {"eval_sets": {"realistic": "--augment realistic", "none": ""},
              "rows": {"none": {"scores": {"realistic": {**scores, "mask_iou": 0.25}, "none": scores},
                                "seconds_per_step": 0.7231, "arguments": "--augment none"}}}
    lines = markdown_table(report).splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == 9
    assert lines[2] == "| `none` | 0.250 | - | 0.424 | 0.862 | - | 0.424 | 0.723 |"


def test_the_constant_floor_predicts_an_empty_mask_and_a_flat_disparity():
    mask_logits, disparity = ConstantPrediction()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    assert mask_logits.shape == disparity.shape == (2, 1, 8, 8)
    assert (mask_logits < 0).all() and (disparity == disparity[0, 0, 0, 0]).all()
