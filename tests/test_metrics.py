"""builder.train.metrics and builder.train.losses on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from builder.train.losses import depth_loss, mask_loss
from builder.train.metrics import MetricSums, align_scale_shift, depth_errors, mask_iou


def test_iou_of_known_masks():
    truth = torch.zeros(2, 1, 4, 4)
    truth[0, 0, :2, :] = 1  # 8 pixels
    logits = torch.full((2, 1, 4, 4), -3.0)
    logits[0, 0, 1:3, :] = 3  # 8 pixels, 4 of them shared: IoU 4 / 12
    assert mask_iou(logits, truth).tolist() == pytest.approx([1 / 3, 1.0])  # image 1: both empty


@pytest.mark.parametrize("magnitude", [1.0, 1e-7])  # raw disparity of a random-weight model is ~1e-7
def test_aligned_depth_of_a_scaled_and_shifted_copy_is_exact(magnitude):
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(3, 1, 8, 8, generator=generator, dtype=torch.float64) + 0.1) * magnitude
    prediction = -2.5 * target + 7.0 * magnitude  # any scale (even negative) and shift
    torch.testing.assert_close(align_scale_shift(prediction, target), target)
    absrel, delta1 = depth_errors(prediction, target)
    assert absrel.max().item() < 1e-9 and delta1.tolist() == [1.0, 1.0, 1.0]
    assert depth_loss(prediction.float(), target.float()).item() < 1e-6 * magnitude


def test_depth_errors_on_a_known_miss():
    target = torch.tensor([1.0, 1.0, 1.6, 1.6]).view(1, 1, 2, 2)
    prediction = torch.tensor([1.0, 2.0, 1.0, 2.0]).view(1, 1, 2, 2)  # uncorrelated: aligns to the mean, 1.3
    absrel, delta1 = depth_errors(prediction, target)
    assert absrel.item() == pytest.approx((0.3 + 0.3 + 0.3 / 1.6 + 0.3 / 1.6) / 4)
    assert delta1.item() == pytest.approx(0.5)  # 1.3 / 1 fails, 1.6 / 1.3 passes


def test_pixels_without_a_positive_label_or_beyond_the_range_cap_do_not_count():
    target = torch.tensor([0.0, 0.0099, 1.0, 2.0, 3.0, 1.0], dtype=torch.float64).view(1, 1, 2, 3)
    prediction = torch.tensor([50.0, -9.0, 1.0, 2.0, 3.0, 1.0], dtype=torch.float64).view(1, 1, 2, 3)
    absrel, delta1 = depth_errors(prediction, target)
    assert absrel.item() < 1e-9 and delta1.item() == 1.0
    absrel, _ = depth_errors(prediction, torch.zeros_like(target))
    assert math.isnan(absrel.item())


def test_losses_are_finite_on_an_empty_mask_and_a_constant_depth():
    empty, constant = torch.zeros(2, 1, 8, 8), torch.full((2, 1, 8, 8), 0.5)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    disparity = torch.randn(2, 1, 8, 8, requires_grad=True)
    flat_prediction = torch.zeros(2, 1, 8, 8, requires_grad=True)  # a constant prediction cannot be scaled
    for loss in (mask_loss(logits, empty), depth_loss(disparity, constant), depth_loss(flat_prediction, constant),
                 depth_loss(flat_prediction, torch.rand(2, 1, 8, 8))):
        loss.backward()
        assert torch.isfinite(loss)
    for tensor in (logits, disparity, flat_prediction):
        assert torch.isfinite(tensor.grad).all()
    assert depth_loss(disparity, constant).item() < 1e-6  # a constant label is matched by shift alone
    assert mask_loss(torch.full((1, 1, 8, 8), -20.0), torch.zeros(1, 1, 8, 8)).item() < 1e-6


def test_metric_sums_average_per_image_and_skip_unmeasured_images():
    sums = MetricSums()
    sums.add_rows(3)
    sums.add("mask_iou", torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    sums.add("depth_absrel", torch.tensor([0.2, float("nan"), 0.4], dtype=torch.float64))
    result = sums.result()
    assert result["rows"] == 3 and result["mask_iou"] == pytest.approx(0.5)
    assert result["depth_absrel"] == pytest.approx(0.3) and result["depth_delta1"] is None
