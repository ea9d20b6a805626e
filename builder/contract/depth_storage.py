"""How a depth map is stored, per `--depth-bits`: its bits, peak, PNG mode, raw formula and the card's reading
text. The schema, the estimator's quantisation, the encoder, the training loader, the card and verify read them
here, so a change of storage (or a second depth column beside this one) touches this module and the estimator."""

from __future__ import annotations

import dataclasses

import numpy as np

_READING_16 = """`depth` is a 16-bit PNG (mode `I;16`): read it as numbers, not as a picture.

```python
import numpy as np

png = np.asarray(row["depth"])  # uint16, 0..65535
raw = {raw}  # the model's output
```

or let datasets decode it as float32 (0.0..65535.0, nothing lost):

```python
from datasets import Image

samples = samples.cast_column("depth", Image(mode="F"))
```

A constant prediction (a blank or flat image) has `depth_min == depth_max` and an all-zero PNG; the formula above
then gives `depth_min` everywhere.

Do not call `.convert("L")` or `.convert("RGB")` on a depth image: Pillow clips 16-bit values at 255 instead of
scaling them (on a full-range 16-bit ramp, 99.61% of the pixels become 255). For an 8-bit preview shift instead:
`Image.fromarray((png >> 8).astype(np.uint8))`.
"""

_READING_8 = """`depth` is an 8-bit PNG (mode `L`, `--depth-bits 8`): 256 levels per image between `depth_min` and `depth_max`.

```python
import numpy as np

png = np.asarray(row["depth"])  # uint8, 0..255
raw = {raw}  # the model's output, 8-bit steps
```

A constant prediction has `depth_min == depth_max` and an all-zero PNG.
"""


@dataclasses.dataclass(frozen=True)
class DepthStorage:
    """One stored depth encoding: each map min-max scaled to 0..peak, `raw = depth_min + png / peak * span`."""

    bits: int  # 16: PNG I;16; 8: PNG L
    mode: str  # the PIL mode a user decodes
    dtype: type  # numpy dtype of the decoded levels
    description: str  # as the card names it
    reading: str  # the card's "Reading depth" text

    @property
    def peak(self) -> int:
        return 2 ** self.bits - 1

    @property
    def raw_formula(self) -> str:
        return f'row["depth_min"] + png / {self.peak} * (row["depth_max"] - row["depth_min"])'

    def levels(self, quantised: np.ndarray) -> np.ndarray:
        """This storage's levels from the estimator's 16-bit ones (QUANTISED), rounded to nearest."""
        if self.bits == QUANTISED.bits:
            return quantised
        return ((quantised.astype(np.uint32) * self.peak + QUANTISED.peak // 2) // QUANTISED.peak).astype(self.dtype)

    def unit(self, levels: np.ndarray) -> np.ndarray:
        """Stored levels as float32 in [0, 1] (a constant map is all 0)."""
        return levels.astype(np.float32) / np.float32(self.peak)

    def raw(self, levels: np.ndarray, low: float, high: float) -> np.ndarray:
        """The model's prediction back from stored levels, in float64."""
        return float(low) + levels.astype(np.float64) / self.peak * (float(high) - float(low))

    def card_reading(self) -> str:
        return self.reading.format(raw=self.raw_formula)


STORAGES = {
    16: DepthStorage(16, "I;16", np.uint16, "a 16-bit PNG", _READING_16),
    8: DepthStorage(8, "L", np.uint8, "an 8-bit PNG (`--depth-bits 8`)", _READING_8),
}
DEPTH_BITS = tuple(STORAGES)
QUANTISED = STORAGES[16]  # the estimator scales every map to these levels; other storages round from them


def depth_storage(bits: int) -> DepthStorage:
    return STORAGES[bits]


def storage_of_mode(mode: str) -> DepthStorage:
    """The storage of a decoded depth image, from its PIL mode."""
    return next(s for s in STORAGES.values() if s.mode == mode)
