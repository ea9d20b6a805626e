"""Worker processes per rank: the same bytes as in-process rendering, whatever the worker count; and nothing
left behind (no worker process, no shared-memory segment) when a run fails, is interrupted or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from builder.contract.errors import FgbgError
from builder.contract.settings import GenerateConfig
from builder.run.pipeline import load_job, run_shards
from builder.store.output import OutputStore
from builder.run.workers import SHM_PREFIX, WorkerPool, pieces, ring_name, sweep_stale_rings
from tests.conftest import ROOT, Generation, env, shard_files

SETTINGS = {"demo": True, "placements": 2, "shard_size": 20, "batch_size": 8, "depth_input_size": 56}


def shm_segments(owner: int | None = None) -> set[str]:
    """The ring segments in /dev/shm of the rank with pid `owner` (default: this process; see `ring_name`), not
    those of other runs on the machine."""
    prefix = f"{SHM_PREFIX}-{os.getpid() if owner is None else owner}-"
    return {name for name in os.listdir("/dev/shm") if name.startswith(prefix)}


def child_pids() -> set[int]:
    """Our child processes, multiprocessing's resource tracker aside (it lives as long as this interpreter)."""
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids |= {int(p) for p in (task / "children").read_text().split()}
    return {pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}


def build(out: Path, tiny_model: Path, workers: int, **extra) -> Path:
    config = GenerateConfig.from_kwargs(output_dir=out, depth_model=str(tiny_model), workers=workers,
                                        **{**SETTINGS, **extra})
    job = load_job(config, device=torch.device("cpu"))
    store = OutputStore(out)
    store.prepare(job.manifest(), overwrite=False)
    run_shards(job, store, 0, 1)
    return out


def test_pieces_are_contiguous_and_cover_the_batch():
    assert pieces(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert pieces(range(2), 4) == [range(0, 1), range(1, 2)]
    assert pieces([], 2) == []


def test_worker_processes_write_the_same_bytes_as_in_process(tmp_path, tiny_model):
    """Depth included: the model runs in this process either way, on the same batches."""
    inline = shard_files(build(tmp_path / "inline", tiny_model, workers=0))
    assert len(inline) == 5 and shard_files(build(tmp_path / "two", tiny_model, workers=2)) == inline
    # one worker and odd batch boundaries: the ring slots wrap around several times within a shard
    one = build(tmp_path / "one", tiny_model, workers=1, batch_size=3, no_depth=True)
    reference = build(tmp_path / "ref", tiny_model, workers=0, batch_size=3, no_depth=True)
    assert shard_files(one) == shard_files(reference)


class Boom(RuntimeError):
    pass


def test_an_error_mid_run_leaves_no_worker_and_no_shared_memory(tmp_path, tiny_model, monkeypatch):
    before_shm, before_children = shm_segments(), child_pids()
    config = GenerateConfig.from_kwargs(output_dir=tmp_path / "out", depth_model=str(tiny_model), workers=2,
                                        **SETTINGS)
    job = load_job(config, device=torch.device("cpu"))
    store = OutputStore(tmp_path / "out")
    store.prepare(job.manifest(), overwrite=False)
    seen = {}

    def failing_write(task, schema, batches, on_rows):
        next(iter(batches))  # the workers are running and the rings exist
        seen["children"], seen["shm"] = child_pids() - before_children, shm_segments() - before_shm
        raise Boom("disk on fire")

    monkeypatch.setattr(store, "write_shard", failing_write)
    with pytest.raises(Boom):
        run_shards(job, store, 0, 1)
    assert len(seen["children"]) == 2 and len(seen["shm"]) == 2
    assert child_pids() - before_children == set()
    assert shm_segments() - before_shm == set()


def test_an_error_in_a_worker_reaches_the_rank_and_cleans_up(tmp_path, tiny_model):
    config = GenerateConfig.from_kwargs(output_dir=tmp_path / "out", no_depth=True, workers=2, **SETTINGS)
    job = load_job(config, device=torch.device("cpu"))
    before_shm, before_children = shm_segments(), child_pids()
    with pytest.raises(TypeError, match="unsupported operand"):  # a renderer that fails: pow(ctx, key, stats)
        with WorkerPool(job.ctx, {"default": (pow, {})}, 2, 8) as pool:
            [future.result() for future in pool.render("default", [0, 1, 2], 0)]
    assert child_pids() - before_children == set() and shm_segments() - before_shm == set()


def session_processes(session: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session:
                found.append((entry / "cmdline").read_text().replace("\0", " "))
        except (OSError, ProcessLookupError):
            continue
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_leaves_no_process_and_no_shared_memory(tmp_path, stop):
    """SIGINT: the rank shuts its pool down (exit 130); SIGTERM kills the rank outright: its workers die with it
    (PR_SET_PDEATHSIG) and multiprocessing's resource tracker unlinks the rings. The run holds after its first
    batch (tests/fault_launcher.py) until the signal lands, so it cannot finish first on a loaded machine."""
    run = Generation(tmp_path / "out", "--demo", "--no-depth", "--placements", "2", "--shard-size", "20",
                     "--workers", "2", fault="hold-after-batches:1", cwd=ROOT, start_new_session=True)
    rank = run.process.pid  # the launcher runs the generator in its own process: the rings carry this pid
    try:
        run.wait_until_held()
        workers = [p for p in session_processes(rank) if "multiprocessing" in p and "resource_tracker" not in p]
        assert len(workers) == 2 and len(shm_segments(rank)) == 2  # what the stop must clean up
        os.killpg(rank, stop) if stop == signal.SIGINT else run.process.send_signal(stop)
        result = run.wait(timeout=60)
        assert result.returncode == (130 if stop == signal.SIGINT else -stop), result.stderr[-3000:]
        deadline = time.monotonic() + 20
        while (session_processes(rank) or shm_segments(rank)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_processes(rank) == [] and shm_segments(rank) == set()
    finally:
        if run.process.poll() is None:
            os.killpg(rank, signal.SIGKILL)


def test_workers_import_no_torch():
    """What a worker process imports (spawn: a fresh interpreter that imports builder.run.workers and the
    renderers it is handed) must not load torch: seconds of start-up and hundreds of MB per worker."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import builder.run.workers, builder.rows.render"],
                            cwd=ROOT, env=env(PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120)
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "builder.run.workers" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers", "datasets")}


def test_rings_of_dead_ranks_are_swept_and_live_ones_kept(tmp_path):
    """A rank SIGKILLed with its whole process group leaves its rings: the next pool unlinks them."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = f"{SHM_PREFIX}-{dead.stdout.strip()}-0badf00d"
    live = ring_name()
    for name in (stale, live):
        (Path("/dev/shm") / name).write_bytes(b"x")
    try:
        assert stale in sweep_stale_rings()
        assert not (Path("/dev/shm") / stale).exists() and (Path("/dev/shm") / live).exists()
    finally:
        for name in (stale, live):
            (Path("/dev/shm") / name).unlink(missing_ok=True)


def test_too_little_shared_memory_is_refused_with_the_fix(tmp_path, monkeypatch):
    config = GenerateConfig.from_kwargs(output_dir=tmp_path / "out", no_depth=True, **SETTINGS)
    job = load_job(config, device=torch.device("cpu"))
    monkeypatch.setattr(os, "statvfs", lambda path: type("S", (), {"f_bavail": 16, "f_frsize": 2**20})())
    with pytest.raises(FgbgError, match=r"16 MB free .* need 746 MB: lower --batch-size, run with --workers 0"):
        WorkerPool(job.ctx, {}, 2, 1200)


@pytest.mark.parametrize("orphaned", [False, True])
def test_a_worker_whose_rank_died_while_it_started_leaves_at_once(orphaned):
    """PR_SET_PDEATHSIG only covers a rank that dies after the worker set it; a worker that finds itself already
    orphaned (its parent is not the rank that started it) exits instead of waiting forever on the task queue."""
    rank_pid = "os.getppid() + 1" if orphaned else "os.getppid()"
    code = f"import os; from builder.run.workers import _die_with_parent; _die_with_parent({rank_pid}); print('on')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (result.returncode, result.stdout.strip()) == ((1, "") if orphaned else (0, "on")), result.stderr
