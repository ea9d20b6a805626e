"""Process-group plumbing around accelerate.

accelerate (1.x) runs `accelerate launch --cpu --num_processes N` with N > 1 through `mpirun` only: without
an MPI hostfile its simple launcher starts a single process and silently drops N. We detect that case and
start the N processes ourselves with torch.distributed.run (what accelerate uses for GPUs), on the
rendezvous address accelerate prepared, so the documented command does what it says.
"""

from __future__ import annotations

import os
import subprocess
import sys

_DISTRIBUTED_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def use_cpu() -> bool:
    """CPU processes: asked for (`accelerate launch --cpu`) or no CUDA device at all."""
    import torch

    return _flag("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def num_processes_from_argv(words: list[str]) -> int:
    """`--num_processes N`, `--num_processes=N` (or the dashed spelling) in a launcher's argv; 1 if absent
    or not a number, so a command line we cannot read never multiplies processes."""
    for n, word in enumerate(words):
        for flag in ("--num_processes", "--num-processes"):
            if word == flag and n + 1 < len(words) and words[n + 1].isdigit():
                return int(words[n + 1])
            if word.startswith(flag + "=") and word.split("=", 1)[1].isdigit():
                return int(word.split("=", 1)[1])
    return 1


def _launcher_num_processes() -> int:
    """`--num_processes` of the `accelerate launch` that started us (its command line is our parent's)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            return num_processes_from_argv(handle.read().decode(errors="replace").split("\0"))
    except OSError:
        return 1


def cpu_processes_dropped_by_accelerate() -> int:
    """N when accelerate's simple launcher was asked for N > 1 CPU processes but started only us; else 0.
    Its tell-tale: ACCELERATE_USE_CPU and MASTER_ADDR set (it sets the latter only for N > 1), but no rank."""
    if not _flag("ACCELERATE_USE_CPU") or "MASTER_ADDR" not in os.environ:
        return 0
    if any(name in os.environ for name in _DISTRIBUTED_VARS):
        return 0
    processes = _launcher_num_processes()
    return processes if processes > 1 else 0


def relaunch_cpu_processes(script: str, argv: list[str], processes: int) -> int:
    """Run `script argv` as `processes` CPU processes under torch.distributed.run; its exit status."""
    print(f"accelerate started 1 process for --cpu --num_processes {processes} (it needs MPI for that); "
          f"starting {processes} CPU processes with torch.distributed.run", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
               "--master_addr", os.environ["MASTER_ADDR"], "--master_port", os.environ.get("MASTER_PORT", "29500"),
               script, *argv]
    return subprocess.call(command)
