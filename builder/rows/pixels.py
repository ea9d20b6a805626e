"""The run's input pixels, decoded when a row first needs them and kept in the process's LruCache while they are
used: a process holds what its current rows need, whatever the number of inputs. Read-only arrays."""

from __future__ import annotations

import numpy as np

from builder.contract.settings import ContentSettings
from builder.rows.assets import Inputs, decode_background
from builder.rows.cache import LruCache
from builder.rows.sources import decode_cutout
from builder.rows.sources.coco import decode_image


def _kept(array: np.ndarray) -> tuple[np.ndarray, int]:
    array.setflags(write=False)
    return array, array.nbytes


class InputPixels:
    """Backgrounds (R x R x 3) and cut-outs (RGBA cropped to their box) by id. A COCO image's pixels stay here,
    outside the cache, until another image is needed: instances of one image come together in fg_id order, so the
    image is decoded once for them. For one thread (a process's renderer)."""

    def __init__(self, inputs: Inputs, settings: ContentSettings, cache: LruCache):
        self.inputs, self.settings, self.cache = inputs, settings, cache
        self._image: tuple[str | None, np.ndarray | None] = (None, None)  # the last COCO image: (name, pixels)

    def background(self, bg_id: int) -> np.ndarray:
        return self.cache.get(("background", bg_id), lambda: _kept(
            decode_background(self.inputs.bg_files[bg_id], self.settings.resolution)))

    def cutout(self, fg_id: int) -> np.ndarray:
        return self.cache.get(("cutout", fg_id), lambda: _kept(self.decode_cutout(fg_id)))

    def decode_cutout(self, fg_id: int) -> np.ndarray:
        """The cut-out decoded now, not kept: for what is kept in another form (its premultiplied flips), or used
        once (its `foregrounds` row)."""
        cutout = self.inputs.cutouts[fg_id]
        if cutout.rle is None:
            return decode_cutout(cutout, self.settings.mask_threshold)
        if self._image[0] != cutout.file.name:
            self._image = (cutout.file.name, decode_image(cutout.file.read()))
        return decode_cutout(cutout, self.settings.mask_threshold, self._image[1])
