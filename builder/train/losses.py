"""Training losses: BCE + Dice for the mask, and a scale-and-shift-invariant loss for relative depth.

The depth labels are per-image relative disparity, so the depth loss first aligns the prediction to the label
by least squares per image (MiDaS, Ranftl et al. 2020) and then takes the mean absolute error: any scale and
shift of a perfect prediction costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from builder.train.metrics import align_scale_shift


def mask_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE plus mean soft Dice loss (smoothed by 1, so an empty mask predicted empty costs ~0)."""
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    probability = torch.sigmoid(logits)
    dims = tuple(range(1, mask.dim()))
    dice = (2 * (probability * mask).sum(dims) + 1) / (probability.sum(dims) + mask.sum(dims) + 1)
    return bce + (1 - dice).mean()


def depth_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error after per-image least-squares scale-and-shift alignment."""
    return (align_scale_shift(prediction, target) - target).abs().mean()


def total_loss(mask_logits: torch.Tensor, disparity: torch.Tensor, batch: dict) -> torch.Tensor:
    """The training objective: both terms with weight 1, computed in float32 (outputs may be bf16)."""
    return mask_loss(mask_logits.float(), batch["mask"]) + depth_loss(disparity.float(), batch["depth"])
