"""The report's machine record and its markdown table, one block of lines per section."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                                                         * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": gpu, "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__}


def table(report: dict) -> str:
    """The report as markdown: one table of the sections' lines in a fixed order, then the sections that print a
    table of their own."""
    from builder.bench import (augment_parts, coco_export, composite, depth, e2e, gpu, ground, loader, memory, rank,
                               rows, scale, sources)

    lines = composite.lines(report.get("composite"), report["machine"]["cores"])
    lines += depth.lines(report.get("depth")) + e2e.lines(report.get("e2e")) + rank.lines(report.get("rank"))
    lines += gpu.lines(report.get("gpu")) + memory.lines(report.get("memory")) + scale.lines(report.get("scale"))
    header = ["| measurement | ours | seed-style / pipeline | ratio |", "| --- | --- | --- | --- |"] if lines else []
    own = [section.lines(report.get(name)) for name, section in (("rows", rows), ("augment", augment_parts),
                                                                  ("ground", ground), ("coco", coco_export),
                                                                  ("sources", sources), ("loader", loader))]
    tables = [header + lines, *own]
    return "\n\n".join("\n".join(block) for block in tables if block)
