"""verify, part 4: stats.json against the shards and, on a full pass, against an exact recomputation."""

from __future__ import annotations

import numpy as np

from builder.contract.schema import CONFIG_NAMES
from builder.rows.stats import ImageStats
from builder.store.local import LocalFolder
from builder.verify.layout import Layout, Problems

EXACT_FIELDS = ("max_value", "count", "encoded_bytes", "pixels", "sums", "sums_of_squares")


def counts_problems(saved: dict, folder: LocalFolder, layout: Layout, rows: dict[str, int]) -> Problems:
    problems = []
    for name in CONFIG_NAMES:
        if saved.get("rows", {}).get(name) != rows.get(name):
            problems.append(("stats.json", f"rows[{name}] = {saved.get('rows', {}).get(name)}, the shards hold "
                                           f"{rows.get(name)}"))
    if layout.generated:
        sizes = {name: sum(folder.size(s.relative) for s in layout.shards[name]) for name in CONFIG_NAMES}
        if saved.get("num_bytes") != sizes:
            problems.append(("stats.json", f"num_bytes {saved.get('num_bytes')} != shard sizes {sizes}"))
        if saved.get("data_bytes") != sum(sizes.values()):
            problems.append(("stats.json", f"data_bytes {saved.get('data_bytes')} != {sum(sizes.values())}"))
    return problems


def kinds_problems(saved: dict, recomputed: dict[str, ImageStats]) -> Problems:
    kinds, problems = saved.get("kinds", {}), []
    if sorted(kinds) != sorted(recomputed):
        problems.append(("stats.json", f"kinds {sorted(kinds)}, the data has {sorted(recomputed)}"))
    for kind in sorted(set(kinds) & set(recomputed)):
        ours = recomputed[kind].to_json()
        wrong = [f"{key} {kinds[kind].get(key)} (recomputed {ours[key]})" for key in EXACT_FIELDS
                 if kinds[kind].get(key) != ours[key]]
        if not wrong:  # mean and std follow from the sums; only checked on their own when those agree
            wrong = [f"{key} {kinds[kind].get(key)} (recomputed {ours[key]})" for key in ("mean", "std")
                     if len(kinds[kind].get(key) or []) != len(ours[key])
                     or not np.allclose(kinds[kind][key], ours[key], rtol=1e-12, atol=0)]
        if wrong:
            problems.append(("stats.json", f"{kind} differs from the recomputation: {'; '.join(wrong)}"))
    return problems
