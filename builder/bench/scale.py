"""Section scale: memory and start-up against the number of inputs. The same `--rows` run without depth at
R = 224 on 10 backgrounds and 10 COCO cut-outs, then on many (by default 2,000 backgrounds and 20,000 cut-outs,
builder/bench/scale_inputs.py): peak RSS of each process (VmHWM polled from /proc, main process and render
workers apart), seconds from launch to the first row in a shard, and rows per second after it."""

from __future__ import annotations

from pathlib import Path

from builder.bench.common import RESOLUTION, run_generator
from builder.bench.scale_inputs import scale_inputs

SMALL = (10, 10)


def run(work: Path, backgrounds: int, cutouts: int, rows: int, extra: list[str] = ()) -> dict:
    """Both sizes, small first; `extra`: further generate.py flags (e.g. --workers 0)."""
    result = {"rows": rows, "resolution": RESOLUTION, "flags": list(extra)}
    for name, (n_bg, n_fg) in {"small": SMALL, "large": (backgrounds, cutouts)}.items():
        bg_dir, coco, images = scale_inputs(work / f"scale-{n_bg}-{n_fg}", n_bg, n_fg)
        args = ["--bg-dir", str(bg_dir), "--fg-coco", str(coco), "--fg-images", str(images), "--rows", str(rows),
                "--no-depth", "--resolution", str(RESOLUTION), *extra]
        r = run_generator(args, work / f"scale-out-{name}", first_row=True)
        steady = r["wall_s"] - r["first_row_s"]
        result[name] = {"backgrounds": n_bg, "cutouts": n_fg, "all_rows": r["all_rows"],
                        "first_row_s": round(r["first_row_s"], 2), "wall_s": round(r["wall_s"], 2),
                        "rows_per_s_after_first": round(r["all_rows"] / steady, 1),
                        "peak_rss_mb_by_role": r["peak_rss_mb_by_role"], "peak_rss_mb": max(r["peak_rss_mb"])}
        print(f"  scale {name}: {result[name]}", flush=True)
    small, large = result["small"]["peak_rss_mb_by_role"], result["large"]["peak_rss_mb_by_role"]
    result["rss_ratio_by_role"] = {role: round(max(large[role]) / max(small[role]), 2)
                                   for role in large if role in small}
    return result


def lines(s: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not s:
        return []
    rows = []
    for name in ("small", "large"):
        r = s[name]
        roles = ", ".join(f"{role} {peaks}" for role, peaks in r["peak_rss_mb_by_role"].items())
        rows.append(f"| --rows {s['rows']} --no-depth, {r['backgrounds']:,} backgrounds, {r['cutouts']:,} COCO cut-outs"
                    f": first row (s), rows/s after it | {r['first_row_s']}, {r['rows_per_s_after_first']} | | "
                    f"peak RSS MB: {roles} |")
    ratios = ", ".join(f"{role} {ratio}x" for role, ratio in s["rss_ratio_by_role"].items())
    rows.append(f"| peak RSS, large / small inputs | {ratios} | | |")
    return rows
