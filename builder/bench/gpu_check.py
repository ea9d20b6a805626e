"""scripts/gpu_check.sh's flow, for a machine with one NVIDIA GPU and no network, in under 8 minutes: a random-weight
V2-Small model; the feed's CUDA path (rings page-locked, then with page-locking refused) against the estimator; a
short generation with depth at 518 on scikit-image's photographs, end to end; `verify --depth` on it; bf16 against
fp32 depth; a generation at 224; and the benchmark's gpu section in the time left.

Each step runs as a subprocess with its own time limit, so one that crashes or hangs costs only itself and the steps
that need it. Its status (ok, failed, timeout or skipped), seconds and figures go to OUTDIR/gpu_check.json as soon
as it ends, its whole output to OUTDIR/gpu_check.log. `--cpu-smoke` runs the same flow on CPU at tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from builder.bench.common import ROOT

RESULT = "gpu_check result: "  # the line a Python-level step prints its figures on
REPORT, LOG, BENCHMARK = "gpu_check.json", "gpu_check.log", "benchmark.json"
NEEDED = ("datasets", "dill", "multiprocess", "xxhash")  # not in the GPU image: carried as wheels


@dataclasses.dataclass(frozen=True)
class Sizes:
    architecture: str  # of the random-weight model (builder/testing/random_model.py)
    input_size: int  # depth model input side of the main generation
    small_input_size: int  # of the second generation
    photos: int  # backgrounds, and as many cut-outs
    placements: int
    verify_rows: int  # verify --depth N
    total_s: float  # the whole check, the wheels' install included
    cuda: bool  # a CUDA device is required


GPU_SIZES = Sizes("v2-small", 518, 224, 10, 4, 4, 480, True)
SMOKE_SIZES = Sizes("tiny", 56, 28, 3, 1, 2, 480, False)
BENCHMARK_RESERVE_S = 150  # of the benchmark's time: its end-to-end runs and one measurement past its budget
MIN_STEP_S = 10  # a step is not started with less time than this left


def model_dir(work: Path) -> Path:
    """The random-weight model, where the benchmark's gpu section (run with --workdir WORK) looks for it."""
    return work / "model-v2-small"


def order_one_model_dir(work: Path) -> Path:
    """The same architecture with predictions of order one (random_model.scale_output_to_order_one)."""
    return work / "model-order-one"


@dataclasses.dataclass(frozen=True)
class Paths:
    out: Path  # what comes back: the report, the log, the benchmark's JSON
    work: Path  # models, inputs, datasets

    @property
    def model(self) -> Path:
        return model_dir(self.work)

    def dataset(self, size: int) -> Path:
        return self.work / f"dataset-{size}"


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    needs: tuple[str, ...]
    limit_s: float
    command: Callable[[Paths, Sizes, float], list[str]]  # (paths, sizes, seconds it may take) -> argv
    figures: Callable[[Paths, Sizes, str], dict]  # (paths, sizes, stdout) -> what goes in the report


def python_step(name: str) -> Callable[[Paths, Sizes, float], list[str]]:
    return lambda paths, sizes, limit: [sys.executable, "-m", "builder.bench.gpu_check_steps", name, str(paths.work),
                                        json.dumps(dataclasses.asdict(sizes))]


def printed_result(paths: Paths, sizes: Sizes, stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[-1][len(RESULT):]) if lines else {}


def generate_command(size_of: Callable[[Sizes], int]) -> Callable[[Paths, Sizes, float], list[str]]:
    def command(paths: Paths, sizes: Sizes, limit: float) -> list[str]:
        size, photos = size_of(sizes), paths.work / "photos"
        return [sys.executable, str(ROOT / "scripts" / "generate.py"), "--bg-dir", str(photos / "bg"), "--fg-dir",
                str(photos / "fg"), "--placements", str(sizes.placements), "--depth-model", str(paths.model),
                "--depth-input-size", str(size), "--shard-size", "200", "--output-dir", str(paths.dataset(size)),
                "--overwrite", "--summary-json", str(paths.work / f"generate-{size}.json")]
    return command


def generate_summary(size_of: Callable[[Sizes], int]) -> Callable[[Paths, Sizes, str], dict]:
    return lambda paths, sizes, stdout: json.loads((paths.work / f"generate-{size_of(sizes)}.json").read_text())


def verify_command(paths: Paths, sizes: Sizes, limit: float) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "verify.py"), str(paths.dataset(sizes.input_size)), "--depth",
            str(sizes.verify_rows)]


def benchmark_command(paths: Paths, sizes: Sizes, limit: float) -> list[str]:
    budget = max(0.0, limit - BENCHMARK_RESERVE_S)
    return [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--sections", "gpu", "--output",
            str(paths.out / BENCHMARK), "--workdir", str(paths.work), "--gpu-budget-s", f"{budget:.0f}",
            *([] if sizes.cuda else ["--quick"])]


STEPS = (
    Step("environment", (), 90, python_step("environment"), printed_result),
    Step("model", ("environment",), 120, python_step("model"), printed_result),
    Step("photos", ("environment",), 60, python_step("photos"), printed_result),
    Step("feed", ("model",), 120, python_step("feed"), printed_result),
    Step("generate", ("model", "photos"), 150, generate_command(lambda s: s.input_size),
         generate_summary(lambda s: s.input_size)),
    Step("verify", ("generate",), 120, verify_command, lambda paths, sizes, stdout: {"summary": stdout[-2000:]}),
    Step("precision", ("model",), 120, python_step("precision"), printed_result),
    Step("generate_small", ("model", "photos"), 90, generate_command(lambda s: s.small_input_size),
         generate_summary(lambda s: s.small_input_size)),
    Step("benchmark", ("model",), 600, benchmark_command,
         lambda paths, sizes, stdout: json.loads((paths.out / BENCHMARK).read_text())["gpu"]),
)


def run_process(command: list[str], limit: float) -> tuple[int | None, str, str]:
    """(exit code, or None when it ran past `limit` and its process group was killed; stdout; stderr)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1",
           "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=max(1.0, limit))
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the step's workers and compilers too
        out, err = process.communicate()
        return None, out, err


def run_step(step: Step, paths: Paths, sizes: Sizes, limit: float, log) -> dict:
    """One step's record: status, seconds, its figures or the end of its error output."""
    command = step.command(paths, sizes, limit)
    log.write(f"\n===== {step.name} (limit {limit:.0f} s): {' '.join(command)}\n")
    started = time.monotonic()
    code, out, err = run_process(command, limit)
    record: dict = {"seconds": round(time.monotonic() - started, 1)}
    log.write(out + ("\n----- stderr\n" + err if err else ""))
    try:
        record["figures"] = step.figures(paths, sizes, out)  # a failed check may have printed its figures too
    except (OSError, ValueError, KeyError) as problem:
        if code == 0:
            code, err = 1, f"ran, but its figures could not be read: {type(problem).__name__}: {problem}"
    if code is None:
        record.update(status="timeout", error=f"ran past its {limit:.0f} s limit\n{(out + err)[-1500:]}")
    else:
        record.update(status="ok" if code == 0 else "failed")
    if code:
        record["error"] = f"exit code {code}\n{err[-1500:] or out[-1500:]}"
    warnings = sorted({line for line in err.splitlines() if line.startswith("warning:")})
    if warnings:
        record["warnings"] = warnings  # the fallbacks that were taken (builder/run/fallback.py), among others
    log.write(f"===== {step.name}: {record['status']} in {record['seconds']} s\n")
    log.flush()
    return record


def step_limit(step: Step, deadline: float) -> float:
    return min(step.limit_s, deadline - time.time() - 5)


def run_check(paths: Paths, sizes: Sizes, started: float, steps: tuple[Step, ...] = STEPS) -> int:
    """Every step in order, the report rewritten after each; 0 when all passed, else 1."""
    paths.out.mkdir(parents=True, exist_ok=True)
    paths.work.mkdir(parents=True, exist_ok=True)
    deadline = started + sizes.total_s
    report = {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
              "mode": "gpu" if sizes.cuda else "cpu-smoke", "sizes": dataclasses.asdict(sizes), "steps": {}}
    with open(paths.out / LOG, "a") as log:
        for step in steps:
            missing = [name for name in step.needs if report["steps"].get(name, {}).get("status") != "ok"]
            limit = step_limit(step, deadline)
            if missing:
                record = {"status": "skipped", "why": f"needs {', '.join(missing)}"}
            elif limit < MIN_STEP_S:
                record = {"status": "skipped", "why": f"the check's {sizes.total_s:.0f} s are spent"}
            else:
                record = run_step(step, paths, sizes, limit, log)
            report["steps"][step.name] = record
            report["total_s"] = round(time.time() - started, 1)
            report["ok"] = all(r["status"] == "ok" for r in report["steps"].values())
            (paths.out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
            print(f"gpu_check {step.name}: {record['status']} {record.get('seconds', '')}", flush=True)
            if record["status"] in ("failed", "timeout"):
                print(f"FAILED {step.name}: {record['error']}", file=sys.stderr, flush=True)
    print(f"gpu_check: {'all steps ok' if report['ok'] else 'some steps did not pass'} in {report['total_s']} s; "
          f"report {paths.out / REPORT}, log {paths.out / LOG}", flush=True)
    return 0 if report["ok"] else 1
