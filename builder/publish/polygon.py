"""The outer contour of a bool mask as one polygon, for the YOLO export, in numpy and plain Python (no OpenCV).

Points are pixel centres (x = column, y = row), the convention of cv2.findContours and of Ultralytics' own mask
converters: a polygon filled together with its boundary (PIL `ImageDraw.polygon`, `cv2.fillPoly`) gives back the
mask's pixels with its holes filled in (an outer contour has none). Each 8-connected part is traced by Suzuki and
Abe's outer border following (what `cv2.findContours(RETR_EXTERNAL)` does); a part lying in another's hole is
absorbed by filling the holes first. Several parts become one polygon joined by zero-width bridges, largest part first,
each further part hung on the polygon's point nearest to it (as Ultralytics' `merge_multi_segment` joins the pieces
of a COCO instance); points inside straight runs are dropped (`CHAIN_APPROX_SIMPLE`), which changes no pixel.
"""

from __future__ import annotations

import numpy as np

# the 8 neighbours, clockwise on screen (y down) from east, as (dy, dx)
_STEPS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
_WEST = 4


def _runs(mask: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """(row, first column, end column exclusive) of every horizontal run of True, in raster order."""
    edges = np.diff(mask.astype(np.int8), axis=1, prepend=0, append=0)
    rows, starts = np.nonzero(edges == 1)
    return rows.tolist(), starts.tolist(), np.nonzero(edges == -1)[1].tolist()


def _run_roots(rows: list[int], starts: list[int], ends: list[int], reach: int) -> list[int]:
    """Each run's component, named by its first run in raster order. Runs of neighbouring rows touch when their
    columns overlap (reach 0: 4-connected) or meet at a corner (reach 1: 8-connected)."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = i = parent[parent[i]]
        return i

    cuts = [0, *(i for i in range(1, len(rows)) if rows[i] != rows[i - 1]), len(rows)]
    for a, b, b_end in zip(cuts, cuts[1:], cuts[2:]):  # the runs of a row (a..b) and of the next one (b..b_end)
        a_end = b
        if rows[b] != rows[a] + 1:
            continue
        while a < a_end and b < b_end:
            if starts[b] < ends[a] + reach and starts[a] < ends[b] + reach:
                first, second = sorted((root(a), root(b)))
                parent[second] = first
            if ends[a] < ends[b]:
                a += 1
            else:
                b += 1
    return [root(i) for i in range(len(rows))]


def _filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled: background not 4-connected to the frame (the mask has a background frame)."""
    rows, starts, ends = _runs(~mask)
    filled = mask.copy()
    for row, start, end, root in zip(rows, starts, ends, _run_roots(rows, starts, ends, reach=0)):
        if root:  # run 0 is the top row of the frame
            filled[row, start:end] = True
    return filled


def _border(pixels: bytes, width: int, start: int) -> list[int]:
    """The outer border of the part holding `start` (its first pixel in raster order, so its west is background),
    as flat indices: Suzuki and Abe's border following, steps 3.1 to 3.5."""
    steps = [dy * width + dx for dy, dx in _STEPS]
    first = next((d for d in ((_WEST + k) % 8 for k in range(8)) if pixels[start + steps[d]]), None)
    if first is None:
        return [start]
    last, border, here, back = start + steps[first], [start], start, first
    while True:
        for k in range(1, 9):
            d = (back - k) % 8
            step = here + steps[d]
            if pixels[step]:
                break
        if step == start and here == last:
            return border
        border.append(step)
        here, back = step, (d + 4) % 8


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """One closed point sequence through every part: each next part hangs on a zero-width bridge (out and back)
    from the polygon's point nearest to it."""
    polygon = parts[0]
    for part in parts[1:]:
        gaps = ((polygon[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, m = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
        polygon = np.concatenate([polygon[:i + 1], np.roll(part, -m, axis=0), part[m:m + 1], polygon[i:]])
    return polygon


def _corners(points: np.ndarray) -> np.ndarray:
    """The points where the closed sequence turns; at least 3 (a dot or a line repeats its points), so that a
    reader never takes the polygon for a box (YOLO reads 4 numbers as a box)."""
    if len(points) >= 3:
        turns = np.any((points - np.roll(points, 1, axis=0)) != (np.roll(points, -1, axis=0) - points), axis=1)
        points = points[turns]
    return points[np.arange(max(3, len(points))) % len(points)]


def outer_polygon(mask: np.ndarray) -> np.ndarray:
    """(n, 2) int pixel coordinates (x, y), n >= 3, of the outer contour of a mask with at least one True pixel."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, x0 = int(rows[0]) - 1, int(cols[0]) - 1  # crop to the box plus a background frame
    filled = np.pad(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1)
    runs = _runs(filled)
    roots = _run_roots(*runs, reach=1)
    if any(roots):  # several parts, one of which may lie in another's hole: fill the holes (no border moves)
        filled = _filled(filled)
        runs = _runs(filled)
        roots = _run_roots(*runs, reach=1)
    sizes = np.bincount(roots, weights=np.subtract(runs[2], runs[1]))
    firsts = sorted((i for i, r in enumerate(roots) if r == i), key=lambda i: -sizes[i])
    width, pixels = filled.shape[1], filled.tobytes()
    parts = []
    for i in firsts:
        flat = np.array(_border(pixels, width, runs[0][i] * width + runs[1][i]))
        parts.append(np.stack([flat % width + x0, flat // width + y0], axis=1))
    return _corners(_join(parts))
