"""Section coco: the COCO export (scripts/export_coco.py) of an `--objects 2-3 --no-depth` dataset, its wall time
per row scaled to 10,000 rows. The cost of such rows themselves is in the rows section."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from builder.bench.common import ROOT, run_generator


def run(work: Path, bg_dir: Path, fg_dir: Path, resolution: int, rows: int) -> dict:
    pairs = len(list(bg_dir.iterdir())) * len(list(fg_dir.iterdir())) * 2
    out = work / "coco-source"
    generated = run_generator(["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir), "--no-depth", "--objects", "2-3",
                               "--placements", str(max(1, rows // pairs)), "--resolution", str(resolution)], out)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_coco.py"), str(out), str(work / "coco")],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    return {"rows": generated["rows"], "wall_s": wall, "s_per_10000_rows": wall / generated["rows"] * 10_000}


def lines(r: dict | None) -> list[str]:
    if not r:
        return []
    return [f"COCO export of {r['rows']} `--objects 2-3` rows: {r['wall_s']:.1f} s wall, "
            f"{r['s_per_10000_rows']:.0f} s per 10,000 rows (scaled)"]
