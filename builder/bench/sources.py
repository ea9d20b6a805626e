"""Section sources: a COCO-sourced run against an RGBA-folder run of the same cut-outs (the COCO run's cut-outs,
saved as RGBA PNGs): whole runs without depth, interleaved round by round, CPU ms per `default` row (listing and
decoding the inputs included) and the generator's own seconds; and the CPU seconds of listing and decoding the
inputs alone, in this process."""

from __future__ import annotations

import time
from pathlib import Path

from builder.bench.common import median


def load_cpu_s(settings, run) -> float:
    from builder.rows.assets import load_inputs

    start = time.process_time()
    load_inputs(settings, run)
    return time.process_time() - start


def run(work: Path, bg_dir: Path, resolution: int, images: int, per_image: int, placements: int,
        rounds: int) -> dict:
    from PIL import Image

    from builder.bench.common import run_generator
    from builder.bench.inputs import coco_inputs
    from builder.contract.settings import ContentSettings, RunOptions
    from builder.rows.assets import load_inputs
    from builder.rows.render import RenderContext

    work = work / "sources"
    coco, image_dir = coco_inputs(work / "coco", images, per_image)
    settings = ContentSettings(resolution=resolution, no_depth=True)
    runs = {"coco": RunOptions(bg_dir=bg_dir, fg_coco=coco, fg_images=image_dir),
            "rgba": RunOptions(bg_dir=bg_dir, fg_dir=work / "rgba")}
    (work / "rgba").mkdir(parents=True, exist_ok=True)
    coco_run = RenderContext(settings, load_inputs(settings, runs["coco"]))
    for n in range(len(coco_run.inputs.cutouts)):
        Image.fromarray(coco_run.pixels.cutout(n), "RGBA").save(work / "rgba" / f"fg_{n:05d}.png")
    flags = {"coco": ["--fg-coco", str(coco), "--fg-images", str(image_dir)], "rgba": ["--fg-dir", str(work / "rgba")]}
    common = ["--bg-dir", str(bg_dir), "--no-depth", "--workers", "0", "--resolution", str(resolution),
              "--placements", str(placements)]
    whole, loads = {name: [] for name in runs}, {name: [] for name in runs}
    for _ in range(rounds):  # interleaved: both see the same machine load
        for name in runs:
            whole[name].append(run_generator([*common, *flags[name]], work / f"out_{name}"))
            loads[name].append(load_cpu_s(settings, runs[name]))
    rows = whole["coco"][0]["rows"]
    result = {"rows": rows, "rounds": rounds, "resolution": resolution, "cut_outs": len(list((work / "rgba").iterdir())),
              "backgrounds": len(list(bg_dir.iterdir()))}
    for name in runs:
        cpu = [r["cpu_s"] * 1000 / rows for r in whole[name]]
        result[name] = {"cpu_ms_per_row": median(cpu), "cpu_ms_per_row_per_round": cpu,
                        "generator_s": median([r["seconds"] for r in whole[name]]),
                        "listing_and_decoding_cpu_s": median(loads[name])}
    result["coco_over_rgba_per_round"] = [c["cpu_s"] / r["cpu_s"] for c, r in zip(whole["coco"], whole["rgba"])]
    return result


def lines(r: dict | None) -> list[str]:
    if not r:
        return []
    out = [f"cut-outs from a COCO file against an RGBA folder of the same {r['cut_outs']} cut-outs: "
           f"{r['backgrounds']} backgrounds, R = {r['resolution']}, {r['rows']} `default` rows per run, --no-depth, "
           f"{r['rounds']} interleaved rounds", "",
           "| source | CPU ms per row, whole run | generator s | listing + decoding the inputs, CPU s |",
           "| --- | ---: | ---: | ---: |"]
    for name in ("coco", "rgba"):
        s = r[name]
        out.append(f"| {name} | {s['cpu_ms_per_row']:.2f} | {s['generator_s']:.2f} | "
                   f"{s['listing_and_decoding_cpu_s']:.3f} |")
    out.append(f"| COCO / RGBA CPU per row, round by round | "
               f"{', '.join(f'{x:.2f}' for x in r['coco_over_rgba_per_round'])} | | |")
    return out
