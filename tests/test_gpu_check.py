"""scripts/gpu_check.sh's pieces on CPU (its whole --cpu-smoke flow takes minutes here, ~200 s on the loaded 2-core
machine): the step runner's statuses, skips and time limits (builder/bench/gpu_check.py), the shell's usage errors, and
the Python-level steps that compare depth maps (builder/bench/gpu_check_steps.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from importlib import metadata

import pytest

from builder.bench import gpu_check, gpu_check_steps
from builder.bench.gpu_check import RESULT, SMOKE_SIZES, Paths, Step, run_check
from tests.conftest import ROOT


def python(code: str):
    return lambda paths, sizes, limit: [sys.executable, "-c", code]


def printed(paths, sizes, stdout):
    return gpu_check.printed_result(paths, sizes, stdout)


def test_runner_records_each_status_and_skips_what_needs_a_failed_step(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "MIN_STEP_S", 1)
    steps = (
        Step("first", (), 60, python(f"print({RESULT!r} + '{{\"maps_per_s\": 5}}')"), printed),
        Step("broken", ("first",), 60, python("import sys; print('warning: copy stream refused', file=sys.stderr); "
                                               "sys.exit('boom')"), printed),
        Step("after_broken", ("broken",), 60, python("print('never')"), printed),
        Step("hangs", ("first",), 2, python("import subprocess; subprocess.run(['sleep', '60'])"), printed),
        Step("last", ("first",), 60, python("pass"), printed),
    )
    paths = Paths(tmp_path / "out", tmp_path / "work")
    started = time.monotonic()
    assert run_check(paths, SMOKE_SIZES, time.time(), steps) == 1
    assert time.monotonic() - started < 30  # the hung step's process group was killed at its limit
    report = json.loads((paths.out / "gpu_check.json").read_text())
    records = report["steps"]
    assert records["first"]["status"] == "ok" and records["first"]["figures"] == {"maps_per_s": 5}
    assert records["broken"]["status"] == "failed" and "exit code 1" in records["broken"]["error"]
    assert "boom" in records["broken"]["error"] and records["broken"]["warnings"] == ["warning: copy stream refused"]
    assert records["after_broken"] == {"status": "skipped", "why": "needs broken"}
    assert records["hangs"]["status"] == "timeout" and records["last"]["status"] == "ok"
    assert report["ok"] is False and report["mode"] == "cpu-smoke"
    log = (paths.out / "gpu_check.log").read_text()
    assert "===== broken" in log and "boom" in log and "===== last: ok" in log


def test_runner_skips_steps_once_the_time_is_spent(tmp_path):
    sizes = dataclasses.replace(SMOKE_SIZES, total_s=5)
    steps = (Step("first", (), 60, python("pass"), printed),)
    assert run_check(Paths(tmp_path / "out", tmp_path / "work"), sizes, time.time(), steps) == 1
    record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["steps"]["first"]
    assert record == {"status": "skipped", "why": "the check's 5 s are spent"}


def test_benchmark_gets_the_time_left_less_its_reserve(tmp_path):
    paths = Paths(tmp_path / "out", tmp_path / "work")
    command = gpu_check.benchmark_command(paths, gpu_check.GPU_SIZES, 400)
    assert command[command.index("--gpu-budget-s") + 1] == "250" and "--quick" not in command
    assert str(paths.out / "benchmark.json") in command
    smoke = gpu_check.benchmark_command(paths, SMOKE_SIZES, 100)
    assert smoke[smoke.index("--gpu-budget-s") + 1] == "0" and "--quick" in smoke


def run_shell(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=60)


def test_shell_refuses_without_outdir_or_the_wheels_it_needs(tmp_path):
    assert run_shell().returncode == 2 and "usage: scripts/gpu_check.sh OUTDIR" in run_shell().stderr
    no_modules = tmp_path / "python"
    no_modules.write_text("#!/bin/sh\nexit 1\n")  # a python whose every import fails
    no_modules.chmod(0o755)
    (tmp_path / "wheels").mkdir()
    result = run_shell(str(tmp_path / "out"), PYTHON=str(no_modules), GPU_CHECK_WHEELS=str(tmp_path / "wheels"))
    assert result.returncode == 2
    assert "datasets, dill, multiprocess, xxhash are not all installed" in result.stderr
    assert f"{tmp_path / 'wheels'} holds no wheels" in result.stderr


def test_requirement_problems_name_what_is_missing_or_too_old(monkeypatch):
    real = metadata.version

    def version(name):
        if name == "xxhash":
            raise metadata.PackageNotFoundError(name)
        return "15.0.0" if name == "pyarrow" else real(name)

    monkeypatch.setattr(metadata, "version", version)
    problems = gpu_check_steps.requirement_problems()
    assert "xxhash: not installed" in problems
    assert "pyarrow>=24.0.0: 15.0.0 installed" in problems  # datasets' floor; ours (>=15) is met
    assert not [p for p in problems if p.startswith("pyarrow>=15")]


def test_feed_and_precision_steps_compare_maps_on_cpu(tmp_path):
    pytest.importorskip("skimage")  # the photographs
    gpu_check_steps.model(tmp_path, SMOKE_SIZES)
    gpu_check_steps.photos(tmp_path, SMOKE_SIZES)
    feed = gpu_check_steps.feed(tmp_path, SMOKE_SIZES)
    assert feed["cpu"] == {"max_level_difference": 0, "staged": False} and "problem" not in feed
    precision = gpu_check_steps.precision(tmp_path, SMOKE_SIZES)
    assert precision["maps"] == 3 and min(precision["distinct_levels_bfloat16"]) > 10_000
    assert 0 < precision["max_level_difference"] <= 0.02 * 65535 and "problem" not in precision
