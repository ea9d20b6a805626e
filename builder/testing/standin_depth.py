"""A stand-in depth estimator for BENCHMARKS ONLY: smooth, plausible maps at almost no cost, so that the
CPU side of the generator (compositing, encoding, statistics, writing) can be timed without the model.

Not reachable from scripts/generate.py: a dataset built with it would carry fake depth."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from builder.run.depth import DepthBatch, scale_to_uint16

# Luminance is sampled once per cell of this many pixels, then blurred: depth follows large shapes only.
_CELL = 8
_LUMINANCE = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


class StandinDepthEstimator:
    """Same interface as builder.run.depth.DepthEstimator; inverse depth = a vertical ramp (the ground
    comes nearer towards the bottom) plus a blurred luminance term (objects stand out a little)."""

    revision = "standin"
    dtype = torch.float32
    field_of_view = False

    def __init__(self, input_size: int = 518):
        self.input_size = input_size
        self.device = torch.device("cpu")

    @torch.inference_mode()
    def predict_raw(self, images: np.ndarray) -> torch.Tensor:
        """B x R x R x 3 uint8 -> B x R x R float32 relative inverse depth, deterministic."""
        resolution = images.shape[1]
        sampled = torch.from_numpy(np.ascontiguousarray(images[:, _CELL // 2::_CELL, _CELL // 2::_CELL]))
        small = (sampled.permute(0, 3, 1, 2).float() / 255 * _LUMINANCE).sum(1, keepdim=True)
        small = F.avg_pool2d(small, 3, stride=1, padding=1, count_include_pad=False)
        luminance = F.interpolate(small, size=(resolution, resolution), mode="bilinear", align_corners=False)[:, 0]
        ramp = torch.linspace(0.2, 1.0, resolution).view(1, resolution, 1)
        return luminance.mul_(0.3).add_(ramp)

    def predict_maps(self, images: np.ndarray) -> tuple[torch.Tensor, None]:
        return self.predict_raw(images), None

    def predict(self, images: np.ndarray) -> DepthBatch:
        return scale_to_uint16(self.predict_raw(images))
