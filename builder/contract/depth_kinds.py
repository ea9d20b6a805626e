"""What a stored depth map means: the model's relative inverse depth (disparity, larger = nearer, unknown scale and
shift) or its metric depth in metres (larger = farther). The settings record the kind (`depth_kind`, absent from a
manifest for the relative kind, so relative datasets keep their manifest); the card, verify, the training loader
and ground placement read it here. Geometry works on disparity: 1 / metres for a metric map."""

from __future__ import annotations

import dataclasses

import numpy as np

from builder.contract.depth_storage import DepthStorage


@dataclasses.dataclass(frozen=True)
class DepthKind:
    name: str  # the `--depth-kind` value and the manifest's `depth_kind`
    label: str  # the card's `depth_kind`
    meaning: str  # the card's and README's description of `depth`
    metric: bool

    def disparity(self, levels: np.ndarray, low: float, high: float, storage: DepthStorage) -> np.ndarray:
        """A stored map (its levels and range) as ground placement reads it: R x R float, NaN where unknown.

        Relative: the levels themselves (an affine image of the model's disparity; the ground rule is invariant to
        scale and shift). Metric: 1 / metres, unknown where the map is not positive (the bicubic resize of the
        prediction can undershoot near 0)."""
        if not self.metric:
            return levels.astype(np.float32)
        metres = storage.raw(levels, low, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(metres > 0, 1.0 / metres, np.nan)


RELATIVE = DepthKind("relative", "relative-inverse", "the model's relative inverse depth (disparity: larger is nearer; "
                     "unknown scale and shift)", metric=False)
METRIC = DepthKind("metric", "metric-m", "the model's metric depth in metres (distance: larger is farther)",
                   metric=True)
DEPTH_KINDS = {kind.name: kind for kind in (RELATIVE, METRIC)}
# A depth model that predicts its field of view (Depth Pro): each background's focal length in pixels of its R x R
# image, R / 2 / tan(fov / 2), a column of `backgrounds` (builder.contract.schema) only for such a model;
# --placement-mode physical takes it where --focal-px is not given.
FOCAL_COLUMN = "focal_length_px"


def depth_kind(name: str | None) -> DepthKind:
    """The kind a `depth_kind` setting names; None (a manifest without the key) is the relative kind."""
    return DEPTH_KINDS[name or RELATIVE.name]
