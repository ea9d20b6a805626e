"""Shared helpers: run the real command lines in subprocesses, and a tiny random depth model."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "scripts" / "generate.py"
VERIFY = ROOT / "scripts" / "verify.py"
# Small and fast, but with depth from a real (random) model: 4 bg x 3 fg x 2 x 2 = 48 samples, 3 default shards.
SMALL = ["--demo", "--placements", "2", "--depth-input-size", "56", "--shard-size", "20", "--batch-size", "8"]


def env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1",
            "PYTHONUNBUFFERED": "1", **extra}


def generate_cmd(out: Path, *args: str, processes: int = 1) -> list[str]:
    """The command line; several CPU processes through torchrun (what accelerate's multi-process launch runs).

    `accelerate launch --cpu --num_processes N` is no multi-process launch in accelerate 1.x: without an MPI
    hostfile it starts one plain process.
    """
    if processes == 1:
        return [sys.executable, str(GENERATE), "--output-dir", str(out), *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            str(GENERATE), "--output-dir", str(out), *args]


def run_generate(out: Path, *args: str, processes: int = 1, check: bool = True, timeout: float = 300,
                 **popen) -> subprocess.CompletedProcess:
    result = subprocess.run(generate_cmd(out, *args, processes=processes), capture_output=True, text=True,
                            env=env(), timeout=timeout, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"generate failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def run_verify(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFY), str(out), *args], capture_output=True, text=True,
                          env=env(), timeout=300)


def read_config(out: Path, config_name: str) -> pa.Table:
    """All shards of a config, in shard order, as one table."""
    tables = []
    for path in sorted((out / "data" / config_name).glob("*.arrow")):
        with pa.memory_map(str(path), "r") as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables)


def column_bytes(out: Path, config_name: str, column: str) -> list[bytes]:
    return [cell["bytes"] for cell in read_config(out, config_name).column(column).to_pylist()]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from builder.random_model import save_random_depth_model

    return save_random_depth_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def small_args(tiny_model) -> list[str]:
    return [*SMALL, "--depth-model", str(tiny_model)]


@pytest.fixture(scope="session")
def reference_dataset(tmp_path_factory, small_args) -> Path:
    """One uninterrupted run of the small settings, shared (read-only) by the tests."""
    out = tmp_path_factory.mktemp("reference") / "out"
    run_generate(out, *small_args)
    return out
