"""scripts/benchmark.py's GPU section (builder/bench/gpu.py) without CUDA (it says so and the run goes on), its error
recording and time budget, and the photograph inputs of the rank and gpu sections (builder/bench/inputs.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from builder.bench import gpu, inputs
from tests.conftest import ROOT, env


def test_gpu_section_without_cuda_says_so_and_exits_0(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--sections", "gpu", "--output",
                             str(output)], capture_output=True, text=True,
                            env=env(CUDA_VISIBLE_DEVICES=""), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["gpu"] == {"note": "no CUDA device: GPU section skipped"}
    assert "| GPU | no CUDA device" in result.stdout


def test_gpu_section_records_each_failure_and_goes_on(tmp_path, monkeypatch):
    """On a GPU machine each sub-measurement that fails is recorded in the JSON; the others still run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "stand-in GPU")
    (tmp_path / "model-v2-small").mkdir()
    calls = []

    def fail(*args):
        calls.append(args[0].__name__ if callable(args[0]) else args)
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(gpu, "in_child", fail)
    monkeypatch.setattr(gpu, "gpu_end_to_end", lambda *a: {"rows_per_s": 10.0, "rows": 1})
    result = gpu.run(tmp_path, lambda: (tmp_path, tmp_path), 1)
    assert result["estimator"] == {"error": "RuntimeError: CUDA error: out of memory"}
    assert result["pipeline_per_image"]["error"].startswith("RuntimeError")
    assert result["e2e_1_gpu"]["rows_per_s"] == 10.0 and result["e2e_2_gpus"]["rows_per_s"] == 10.0
    assert calls == ["gpu_estimator_sweep", "gpu_pipeline_per_image"]


def test_attempt_skips_once_the_budget_is_spent():
    record = {}
    gpu.attempt(record, "late", lambda: {"maps_per_s": 1}, deadline=time.monotonic() - 1)
    assert record == {"late": {"skipped": "time budget of the GPU section spent"}}


def test_photo_inputs_are_backgrounds_and_soft_cut_outs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("astronaut.png", (512, 512)), ("rocket.jpg", (427, 640))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    bg_dir, fg_dir = inputs.photo_inputs(tmp_path / "inputs", photos, 5, 3)
    backgrounds = [Image.open(p) for p in sorted(bg_dir.iterdir())]
    cut_outs = [np.asarray(Image.open(p)) for p in sorted(fg_dir.iterdir())]
    assert len(backgrounds) == 5 and {b.size for b in backgrounds} == {(inputs.RESOLUTION,) * 2}
    assert len(cut_outs) == 3 and all(c.shape[2] == 4 for c in cut_outs)
    for alpha in (c[..., 3] for c in cut_outs):  # opaque centre, transparent corners, a soft edge between
        assert alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] == 255 and alpha[0, 0] == 0
        assert ((alpha > 0) & (alpha < 255)).any()


def test_budget_bounds_the_gpu_section(tmp_path, monkeypatch):
    """gpu_check.sh gives the section what is left of its 8 minutes: past the budget nothing new starts."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "stand-in GPU")
    (tmp_path / "model-v2-small").mkdir()
    monkeypatch.setattr(gpu, "in_child", lambda *args: {"maps_per_s": 1.0})
    result = gpu.run(tmp_path, lambda: (tmp_path, tmp_path), 1, budget_s=-100)
    skipped = {"skipped": "time budget of the GPU section spent"}
    assert result["estimator"] == result["pipeline_per_image"] == result["e2e_1_gpu"] == skipped


def test_benchmark_options_are_never_abbreviated():
    spec = importlib.util.spec_from_file_location("benchmark_command", ROOT / "scripts" / "benchmark.py")
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    assert command.parse_args(["--gpu-budget-s", "200"]).gpu_budget_s == 200
    with pytest.raises(SystemExit):
        command.parse_args(["--gpu-budget", "200"])


def test_a_refused_compile_is_marked_in_the_figures_and_the_table(monkeypatch):
    """torch.compile falls back to the plain model (builder.run.feed): its figure must not pass for a compiled one."""
    from builder.run.fallback import PlainOnFailure

    class Estimator:
        model = PlainOnFailure(None, lambda: None, "torch.compile", "plain")

        def predict_raw(self, images):
            pass

    monkeypatch.setattr(gpu, "gpu_maps_per_s", lambda estimator, images: {"maps_per_s": 7.0, "peak_memory_gib": 1})
    figures = gpu.timed_compile(Estimator(), None)
    assert figures["compiled"] is False and figures["maps_per_s"] == 7.0
    [row] = gpu.lines({"device": "H", "estimator": {"bfloat16 batch 256 compiled": figures}})
    assert "compile refused: the plain model ran" in row
    Estimator.model.fast = print
    assert gpu.timed_compile(Estimator(), None)["compiled"] is True


def test_an_unknown_section_exits_2_before_measuring(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--sections", "rows,rowz",
                             "--output", str(output)], capture_output=True, text=True, env=env(), timeout=120)
    assert result.returncode == 2 and "unknown section(s) rowz" in result.stderr, result.stderr
    assert not output.exists()


def _photos(folder):
    """Two stand-in photographs: smooth gradients with texture, as a JPEG and a PNG."""
    folder.mkdir()
    yy, xx = np.mgrid[:300, :400]
    for name, phase in (("astronaut.png", 0), ("rocket.jpg", 1)):
        rgb = np.dstack([(xx + 40 * np.sin(yy / 17 + phase)) % 256, yy % 256, (xx * yy // 97) % 256])
        Image.fromarray(rgb.astype(np.uint8)).save(folder / name)
    return folder


def test_rows_section_times_every_variant_on_whole_pairs_of_rows(tmp_path):
    from builder.bench import rows

    bg_dir, fg_dir = inputs.photo_inputs(tmp_path / "inputs", _photos(tmp_path / "photos"), 3, 3)
    indices = rows.row_indices(2 * rows.PAIR_ROWS, 3, 3)
    assert indices[:rows.PAIR_ROWS] == list(range(rows.PAIR_ROWS))  # the first pair's both flips, in order
    assert indices[rows.PAIR_ROWS] // rows.PAIR_ROWS == 1 * 3 + 1  # then background 1 with cut-out 1
    measured = rows.measure(str(bg_dir), str(fg_dir), 64, 3, 2)
    result = rows.summarise(measured)
    assert list(result["ms_per_row"]) == rows.variant_names()
    assert all(len(v) == 2 and min(v) > 0 for v in measured["ms_per_row_per_round"].values())
    assert result["x_none"]["none"] == 1.0
    table = "\n".join(rows.lines(result))
    for name in rows.OPTIONS:
        assert f"| {name} |" in table
    assert "| loader decode |" in table and "rows/s" in table


def test_rows_section_reports_variants_over_budget_relative_to_the_reference():
    from builder.bench import rows

    result = {"ms_per_row": {rows.REFERENCE: 4.0, "none": 2.3, "realistic": 4.3, "realistic + depth": 9.0}}
    budget = {"reference_ms_per_row": 2.0, "ms_per_row": {"none": 1.0, "realistic": 2.0, "absent": 1.0}}
    # twice as slow a machine: allowed 2.0 and 4.0 ms; none is 15% over, realistic 7.5% (within 10%)
    [over] = rows.over_budget(result, budget)
    assert over["variant"] == "none" and over["allowed_ms_per_row"] == 2.0 and round(over["over_by"], 2) == 0.15
    lines = rows.lines({**rows.summarise({"rows": 1, "rounds": 1, "resolution": 64, "ms_per_row_per_round": {
        name: [1.0] for name in rows.variant_names()}}), "budget": {"file": "b.json", "over": [over]}})
    assert any(line.startswith("  OVER BUDGET none: 2.30 ms per row, allowed 2.00") for line in lines)


def test_sources_section_times_a_coco_run_against_an_rgba_run(tmp_path):
    """The sources section (once a script of its own): both whole runs hold the same rows, timed and tabled."""
    from builder.bench import sources
    from builder.bench.inputs import make_inputs

    bg_dir, _ = make_inputs(tmp_path / "inputs", 2, 0)
    result = sources.run(tmp_path, bg_dir, 32, 1, 2, 1, 1)
    assert result["cut_outs"] == 2 and result["rows"] == 2 * 2 * 2 * 1
    for name in ("coco", "rgba"):
        assert result[name]["cpu_ms_per_row"] > 0 and result[name]["listing_and_decoding_cpu_s"] > 0
    table = "\n".join(sources.lines(result))
    assert "| coco |" in table and "| rgba |" in table and len(result["coco_over_rgba_per_round"]) == 1


def test_scale_section_measures_both_sizes_per_process(tmp_path):
    """The scale section on a few generated inputs: each size's whole run, its rows, the seconds to its first row,
    the peak RSS of each process by role, and the large / small ratio per role, tabled."""
    from builder.bench import scale

    result = scale.run(tmp_path, 12, 24, 20, ["--workers", "0"])
    for name, (n_bg, n_fg) in {"small": scale.SMALL, "large": (12, 24)}.items():
        r = result[name]
        assert (r["backgrounds"], r["cutouts"], r["all_rows"]) == (n_bg, n_fg, 20 + n_bg + n_fg)
        assert 0 < r["first_row_s"] < r["wall_s"] and r["rows_per_s_after_first"] > 0
        assert list(r["peak_rss_mb_by_role"]) == ["main"] and r["peak_rss_mb"] > 50
    main = [result[name]["peak_rss_mb_by_role"]["main"][0] for name in ("large", "small")]
    assert result["rss_ratio_by_role"] == {"main": round(main[0] / main[1], 2)}
    table = "\n".join(scale.lines(result))
    assert "10 backgrounds, 10 COCO cut-outs" in table and "12 backgrounds, 24 COCO cut-outs" in table
    assert "| peak RSS, large / small inputs | main " in table
