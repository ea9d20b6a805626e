"""verify's comparisons for several-object rows (`--objects` above 1): the stored `objects` list and instance
columns against the scene re-derived from the seed (builder.rows.scene). Pure: checks.py derives and decodes."""

from __future__ import annotations

import numpy as np

from builder.rows.scene import Scene, SceneImages, object_cells


def same_value(stored, expected) -> bool:
    """A stored cell equals the value recomputed: a float as stored in float32."""
    if isinstance(expected, float):
        return stored is not None and float(np.float32(stored)) == expected
    return stored == expected


def objects_problems(row: dict, scene: Scene, images: SceneImages, split: str, split_foregrounds: tuple[int, ...],
                     categories: list[str | None] | None = None) -> list[str]:
    """Every stored object against the re-derived one (its draws, category, visible box and occlusion), the
    cut-outs' split, and the redraw and drop counts."""
    where, problems = f"sample_id {row['sample_id']}", []
    stored = list(row["objects"] or [])
    for k, cell in enumerate(stored, start=1):
        if cell["fg_id"] not in split_foregrounds:
            problems.append(f"{where}: object {k} is cut-out {cell['fg_id']}, not one of split {split!r}'s")
    expected = object_cells(scene, images, categories)
    if len(stored) != len(expected):
        problems.append(f"{where}: {len(stored)} objects, but the seed draws {len(expected)}")
    for k, (cell, want) in enumerate(zip(stored, expected), start=1):
        wrong = [f"{name} = {cell.get(name)!r} (expected {value!r})" for name, value in want.items()
                 if not same_value(cell.get(name), value)]
        if wrong:
            problems.append(f"{where}: object {k}: {', '.join(wrong)}")
    counts = (row["objects_redrawn"], row["objects_dropped"])
    if counts != (scene.redrawn, scene.dropped):
        problems.append(f"{where}: (objects_redrawn, objects_dropped) = {counts}, the seed gives "
                        f"{(scene.redrawn, scene.dropped)}")
    return problems


def scene_mask_problems(row: dict, decoded: dict, images: SceneImages) -> list[str]:
    """`mask` is the union of the visible objects, `instance_mask` k on object k's visible pixels, `alpha` (with
    `--augment`) the objects' alphas composed, and `bbox` object 1's visible box."""
    where, problems = f"sample_id {row['sample_id']}", []
    for column, expected in (("mask", images.mask), ("instance_mask", images.instances), ("alpha", images.alpha)):
        if column in decoded and not np.array_equal(decoded[column], expected):
            problems.append(f"{where}: {column} differs in {int((decoded[column] != expected).sum())} pixels from "
                            "the objects pasted back to front")
    if list(row["bbox"] or []) != images.bbox(0):
        problems.append(f"{where}: bbox {row['bbox']} is not object 1's visible box {images.bbox(0)}")
    return problems
