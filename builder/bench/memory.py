"""Section memory: peak RSS of the no-depth generator at 1x and 4x the rows (many shards): flat or not."""

from __future__ import annotations

from pathlib import Path

from builder.bench.common import run_generator


def run(work: Path, bg_dir: Path, fg_dir: Path, placements: int, shard_size: int) -> dict:
    """Same run at 1x and 4x the placements with small shards: the peak RSS must not grow with the rows."""
    result = {}
    for factor in (1, 4):
        args = ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--no-depth", "--placements",
                str(placements * factor), "--shard-size", str(shard_size)]
        r = run_generator(args, work / f"mem{factor}")
        result[f"{factor}x"] = {"rows": r["rows"], "shards": -(-r["rows"] // shard_size),
                                "peak_rss_mb": max(r["peak_rss_mb"])}
    result["growth_mb"] = result["4x"]["peak_rss_mb"] - result["1x"]["peak_rss_mb"]
    return result


def lines(m: dict | None) -> list[str]:
    """The section's rows of the report table."""
    if not m:
        return []
    return [f"| peak RSS no-depth, {m['1x']['shards']} vs {m['4x']['shards']} shards (MB) | "
            f"{m['1x']['peak_rss_mb']} vs {m['4x']['peak_rss_mb']} | | growth {m['growth_mb']} MB |"]
