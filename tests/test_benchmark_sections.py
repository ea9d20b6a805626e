"""scripts/benchmark.py's GPU section without CUDA (it says so and the run goes on), its error recording, and the
photograph inputs of the rank and gpu sections."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

from tests.conftest import ROOT, env

spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


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

    monkeypatch.setattr(benchmark, "in_child", fail)
    monkeypatch.setattr(benchmark, "gpu_end_to_end", lambda *a: {"rows_per_s": 10.0, "rows": 1})
    result = benchmark.section_gpu(tmp_path, lambda: (tmp_path, tmp_path), 1)
    assert result["estimator"] == {"error": "RuntimeError: CUDA error: out of memory"}
    assert result["pipeline_per_image"]["error"].startswith("RuntimeError")
    assert result["e2e_1_gpu"]["rows_per_s"] == 10.0 and result["e2e_2_gpus"]["rows_per_s"] == 10.0
    assert calls == ["gpu_estimator_sweep", "gpu_pipeline_per_image"]


def test_attempt_skips_once_the_budget_is_spent():
    record = {}
    benchmark.attempt(record, "late", lambda: {"maps_per_s": 1}, deadline=time.monotonic() - 1)
    assert record == {"late": {"skipped": "time budget of the GPU section spent"}}


def test_photo_inputs_are_backgrounds_and_soft_cut_outs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("astronaut.png", (512, 512)), ("rocket.jpg", (427, 640))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    bg_dir, fg_dir = benchmark.photo_inputs(tmp_path / "inputs", photos, 5, 3)
    backgrounds = [Image.open(p) for p in sorted(bg_dir.iterdir())]
    cut_outs = [np.asarray(Image.open(p)) for p in sorted(fg_dir.iterdir())]
    assert len(backgrounds) == 5 and {b.size for b in backgrounds} == {(benchmark.RESOLUTION,) * 2}
    assert len(cut_outs) == 3 and all(c.shape[2] == 4 for c in cut_outs)
    for alpha in (c[..., 3] for c in cut_outs):  # opaque centre, transparent corners, a soft edge between
        assert alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] == 255 and alpha[0, 0] == 0
        assert ((alpha > 0) & (alpha < 255)).any()
