"""Validation metrics: mask IoU, and depth AbsRel and delta < 1.25 after per-image scale-and-shift alignment.

Our depth labels are per-image relative disparity (any scale and shift), so a prediction is first aligned to
its label by least squares, per image, as MiDaS and Depth Anything evaluate relative depth. Every metric is
a per-image value; `MetricSums` adds them up so ranks can merge their sums before dividing.
"""

from __future__ import annotations

import torch

METRIC_NAMES = ("mask_iou", "depth_absrel", "depth_delta1")
_EPS = 1e-6
# Depth range cap, as depth benchmarks cap metric depth: a label pixel counts when its disparity is at least
# this fraction of the image's largest (so at most 100x farther than the nearest pixel); AbsRel divides by it.
MIN_RELATIVE_DISPARITY = 0.01


def align_scale_shift(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """s * prediction + t with (s, t) per image minimising the squared error to `target` over `valid` pixels.
    B x 1 x H x W in, same out. A constant prediction gets s = 0, t = the target's mean (no division by 0)."""
    weight = torch.ones_like(target) if valid is None else valid.to(target.dtype)
    dims = tuple(range(1, target.dim()))
    count = weight.sum(dims, keepdim=True).clamp_min(1)
    mean_p = (weight * prediction).sum(dims, keepdim=True) / count
    mean_t = (weight * target).sum(dims, keepdim=True) / count
    centred_p = prediction - mean_p
    covariance = (weight * centred_p * (target - mean_t)).sum(dims, keepdim=True)
    variance = (weight * centred_p * centred_p).sum(dims, keepdim=True)
    has_spread = variance > 0  # a constant prediction gets scale 0 (no 0 / 0, also not in the gradient)
    scale = torch.where(has_spread, covariance / torch.where(has_spread, variance, 1), 0)
    return scale * centred_p + mean_t


def mask_iou(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of (logits > 0) with the 0/1 mask; 1 where both are empty."""
    predicted, truth = logits > 0, mask > 0.5
    dims = tuple(range(1, mask.dim()))
    intersection = (predicted & truth).sum(dims).double()
    union = (predicted | truth).sum(dims).double()
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union))


def depth_errors(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (AbsRel, delta1) of the aligned prediction against a disparity target: pixels where the
    target is <= 0 or below MIN_RELATIVE_DISPARITY of the image's largest do not count; an aligned value
    <= 0 fails delta1. NaN for an image with no valid pixel."""
    prediction, target = prediction.double(), target.double()
    dims = tuple(range(1, target.dim()))
    valid = (target > 0) & (target >= MIN_RELATIVE_DISPARITY * target.amax(dims, keepdim=True))
    aligned = align_scale_shift(prediction, target, valid)
    count = valid.sum(dims).double()
    safe_target = torch.where(valid, target, torch.ones_like(target))
    absrel = (valid * (aligned - target).abs() / safe_target).sum(dims) / count
    ratio = torch.maximum(aligned / safe_target, safe_target / aligned.clamp_min(_EPS))
    delta1 = (valid & (aligned > 0) & (ratio < 1.25)).sum(dims) / count
    return absrel, delta1


class MetricSums:
    """Sums of per-image metrics, their image counts and the rows seen, in one float64 tensor (`sums`), so
    ranks merge them with one all-reduce."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.sums = torch.zeros(2 * len(METRIC_NAMES) + 1, dtype=torch.float64, device=device)

    def add_rows(self, rows: int) -> None:
        self.sums[-1] += rows

    def add(self, name: str, per_image: torch.Tensor) -> None:
        """Add one batch of per-image values; NaNs (images without a valid pixel) are left out."""
        index = METRIC_NAMES.index(name)
        kept = per_image[~torch.isnan(per_image)]
        self.sums[2 * index] += kept.sum()
        self.sums[2 * index + 1] += kept.numel()

    def result(self) -> dict[str, float | int | None]:
        """Each metric's mean over the images that had one (None for a metric nobody measured), and `rows`."""
        means = {"rows": int(self.sums[-1].item())}
        for index, name in enumerate(METRIC_NAMES):
            total, count = self.sums[2 * index].item(), self.sums[2 * index + 1].item()
            means[name] = total / count if count else None
        return means
