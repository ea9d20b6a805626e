"""Process plumbing around the work: the accelerate adapter (`generate`) that owns PartialState, thread counts,
OpenMP and allocator policy, and the workaround for accelerate's multi-CPU launch.

accelerate (1.x) runs `accelerate launch --cpu --num_processes N` with N > 1 through `mpirun` only: without
an MPI hostfile its simple launcher starts a single process and silently drops N. We detect that case and
start the N processes ourselves with torch.distributed.run (what accelerate uses for GPUs), on a rendezvous port
the OS picks, so the documented command does what it says and two launches on one machine cannot collide.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from builder.contract.errors import DiskFullError
from builder.contract.plan import tasks_for_process
from builder.contract.settings import GenerateConfig

if TYPE_CHECKING:
    from builder.run.phases import Finisher

DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}

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


def torchrun_command(script: str, argv: list[str], processes: int) -> list[str]:
    """The command line that starts `processes` local ranks of `script` with torch.distributed.run.

    `--standalone`: the launcher binds its rendezvous store to a port the OS gives it (port 0) and hands that
    open socket's port to the ranks. A port probed free and bound later can be taken in between by another
    launch on the machine (two users, two jobs of a scheduler, a test suite beside a job): EADDRINUSE."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            script, *argv]


def relaunch_cpu_processes(script: str, argv: list[str], processes: int) -> int:
    """Run `script argv` as `processes` CPU processes under torch.distributed.run; its exit status. The
    rendezvous address accelerate prepared (MASTER_PORT, default 29500) is not used: see torchrun_command."""
    print(f"accelerate started 1 process for --cpu --num_processes {processes} (it needs MPI for that); "
          f"starting {processes} CPU processes with torch.distributed.run", file=sys.stderr, flush=True)
    return subprocess.call(torchrun_command(script, argv, processes))


def passive_openmp_waits() -> None:
    """OpenMP threads that spin at barriers collapse when the cores are shared (our own CPU worker threads,
    other processes): measured on 2 busy cores, V2-Small at 224 ran at 0.6 maps/s with the default (active)
    policy and 4.5 maps/s with PASSIVE. libgomp reads this once, when torch loads it, so call this before the
    process's first `import torch`; a value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def retain_freed_memory() -> bool:
    """glibc only: keep freed memory in the heap instead of returning it to the kernel.

    Every forward pass allocates and frees the same large activations; by default glibc serves them
    with fresh mmap()s, so each pass page-faults hundreds of MB again (the run's high system time).
    With mmap off and trimming off the heap is reused: peak RSS is unchanged, page faults go away."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-4, 0)) and bool(libc.mallopt(-1, 2 ** 62))  # M_MMAP_MAX=0, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def cpu_threads(num_local_processes: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, num_local_processes))


def generate(config: GenerateConfig, finisher: Finisher) -> dict | None:
    """The whole generation in this process under accelerate; returns the summary on the main process.
    `finisher` (builder.publish.card) writes stats.json, the grids and the card."""
    try:
        return _generate(config, finisher)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        raise DiskFullError(
            f"out of disk space while writing into {config.run.output_dir}: {err}\n"
            "  The unfinished shard was discarded and finished shards are kept: free space (or raise the quota or "
            "file-size limit) and rerun the same command to resume.") from err
    finally:
        _destroy_process_group()


def _destroy_process_group() -> None:
    """Leave the process group cleanly (torch warns about, and NCCL may leak, a group never destroyed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def prepare_everywhere(store, manifest, overwrite: bool, rank: int, num_processes: int) -> None:
    """Rank 0 prepares the folder (lock, manifest, --overwrite, run token); every rank learns the outcome at once.

    A broadcast from rank 0 stands in for the barrier: a rank 0 that fails sends its error instead of leaving
    the others at a barrier until its timeout (30 min). The others raise the same error; they also print it
    unless torchrun runs them (it merges the ranks' output and stops them anyway), since srun or mpirun may keep
    one log per rank and the only copy would be rank 0's."""
    import torch.distributed as dist

    from builder.run.cluster import mark_run

    error = None
    if rank == 0:
        try:
            store.prepare(manifest, overwrite)
            mark_run(store)
        except Exception as err:  # noqa: BLE001 - any failure is relayed, then raised here as it was
            error = err
    if num_processes > 1:
        sent = [_describe(error)]
        dist.broadcast_object_list(sent, src=0)
        if rank != 0 and sent[0] is not None:
            error = _relayed(sent[0])
            if "TORCHELASTIC_RUN_ID" not in os.environ:
                print(f"rank {rank}: rank 0 could not prepare {store.root}:\n{error}", file=sys.stderr, flush=True)
    if error is not None:
        raise error


def _describe(error: Exception | None) -> dict | None:
    """What the other ranks need to raise the same error (exceptions themselves do not all pickle faithfully)."""
    from builder.contract.errors import FgbgError, UsageError

    if error is None:
        return None
    if isinstance(error, UsageError):
        return {"problems": error.problems, "warnings": error.warnings}
    if isinstance(error, FgbgError):
        return {"message": str(error), "exit_code": error.exit_code}
    return {"message": f"{type(error).__name__}: {error}", "exit_code": 1}


def _relayed(description: dict) -> Exception:
    from builder.contract.errors import FgbgError, UsageError

    if "problems" in description:
        return UsageError(description["problems"], description["warnings"])
    error = FgbgError(description["message"])
    error.exit_code = description["exit_code"]
    return error


def _generate(config: GenerateConfig, finisher: Finisher) -> dict | None:
    """Choose the launcher (an independent task when a rank is given by flag or scheduler, else the process group
    of torchrun/accelerate, one process included) and run the phases with it; `--finish` alone needs neither."""
    from builder.run.phases import finish_folder, generate_dataset
    from builder.run.tasks import IndependentTask, task_slot

    started = time.monotonic()
    if config.run.finish:
        return finish_folder(config, finisher, _log)
    slot = task_slot(config.run.rank, config.run.world_size, os.environ, config.run.overwrite)
    passive_openmp_waits()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=use_cpu())
    launcher = IndependentTask(slot, _log) if slot else ProcessGroup(state)
    threads = cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes)))
    if state.device.type == "cpu":
        torch.set_num_threads(threads)
        if config.content.with_depth:
            retain_freed_memory()
    return generate_dataset(config, launcher, state.device, threads,
                            _log if launcher.rank == 0 or slot else lambda message: None, started, finisher)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ProcessGroup:
    """The torch.distributed group of torchrun or accelerate (a single process is a group of one): rank 0 prepares
    for everyone and checks that every node sees the folder; every rank writes its shards beating a heartbeat;
    rank 0 then waits for the others' shards, stopping early when one died, and finishes."""

    def __init__(self, state):
        from builder.run.liveness import rank_timeout

        self.rank, self.world_size = state.process_index, state.num_processes
        self.timeout = rank_timeout()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def prepare(self, run, overwrite: bool) -> None:
        from builder.run.cluster import check_shared_output

        manifest = run.job.manifest()
        prepare_everywhere(run.store, manifest, overwrite, self.rank, self.world_size)
        check_shared_output(run.store, manifest, self.rank, self.world_size)

    def work(self, run):
        from builder.run.liveness import Heartbeat, RankWatch
        from builder.run.progress import JobProgress

        progress = JobProgress(run.store, run.tasks, enabled=self.main)
        others = {r: tasks_for_process(run.tasks, r, self.world_size) for r in range(1, self.world_size)}
        watch = RankWatch(run.store.ranks, others, run.store.is_done, self.timeout)
        with Heartbeat(run.store.ranks, self.rank):
            run.write_mine(progress, on_shard=watch.check if self.main else lambda: None,
                           on_wait=watch.check if self.main else lambda: None)
        if self.main:  # a rank lost while we work or wait stops us early
            run.store.wait_for_all(run.tasks, on_poll=lambda: (progress.refresh(), watch.check()))
        progress.close()
        return progress

    def finish(self, run, progress) -> dict | None:
        if not self.main:
            return None
        summary = run.finisher.finish(run.store, run.tasks, elapsed=time.monotonic() - run.started,
                              resumed_rows=progress.resumed_rows, processes=self.world_size, device=run.device)
        _log(run.finisher.summary_text(summary))
        return summary
