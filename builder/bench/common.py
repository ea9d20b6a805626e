"""What every benchmark section shares: the classic sizes, processes run pinned or spawned, timed subprocesses
of scripts/generate.py with the peak RSS of each process, medians and pollers. Imports no torch (section
children set up OpenMP and the allocator before torch is imported)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CLASSIC_ROWS = 400_000  # 100 backgrounds x 100 foregrounds x 2 flips x 20 placements
RESOLUTION = 224


def pin(cores: set[int] | None) -> None:
    if cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target, args, cores, queue):
    pin(cores)
    try:
        queue.put(("ok", target(*args)))
    except BaseException as err:  # report, never hang the parent
        import traceback

        queue.put(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


def in_child(target, *args, cores: set[int] | None = None):
    """Run target(*args) in a fresh spawned process (optionally pinned), return its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(target, args, cores, queue))
    process.start()
    status, value = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(value)
    return value


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Poller:
    """Calls `poll()` every `interval` seconds in a background thread while the `with` block runs."""

    interval = 0.5

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class RssPoller(Poller):
    """Peak RSS (VmHWM) of every descendant of this process, polled while a subprocess runs."""

    interval = 0.2

    def __init__(self, root_pid: int):
        super().__init__()
        self.root_pid, self.peaks = root_pid, {}

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def poll(self) -> None:
        for pid in self._descendants():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    kb = int(line.split()[1])
                    if kb > self.peaks.get(pid, (0, ""))[0]:
                        self.peaks[pid] = (kb, cmd)

    def python_peaks_mb(self) -> list[float]:
        """Peaks of the Python processes doing the work (the launcher, if any, listed too)."""
        return sorted((round(kb / 1024) for kb, cmd in self.peaks.values() if "python" in cmd or "accelerate" in cmd),
                      reverse=True)

    def roles_mb(self) -> dict[str, list[int]]:
        """Peaks by role: the process started ("main"), render workers, multiprocessing's resource tracker."""
        roles: dict[str, list[int]] = {}
        for pid, (kb, cmd) in self.peaks.items():
            role = ("main" if pid == self.root_pid else "resource tracker" if "resource_tracker" in cmd
                    else "worker" if "multiprocessing" in cmd else "other")
            roles.setdefault(role, []).append(round(kb / 1024))
        return {role: sorted(peaks, reverse=True) for role, peaks in sorted(roles.items())}


class FirstRowPoller(Poller):
    """When the first record batch reached a shard of a generation's folder: a temp shard file grew past the
    schema it starts with, or a shard was finished (seconds since `started`, on the perf_counter clock)."""

    interval = 0.05

    def __init__(self, out_dir: Path, started: float):
        super().__init__()
        self.out_dir, self.started, self.first_row_s, self.sizes = Path(out_dir), started, None, {}

    def poll(self) -> None:
        if self.first_row_s is not None:
            return
        grew = any(path.name.endswith(".tmp") and self.sizes.setdefault(path, size) < size
                   for path, size in self._sizes(self.out_dir / ".fgbg" / "tmp"))
        if grew or any(self._sizes(self.out_dir / ".fgbg" / "done")):
            self.first_row_s = time.perf_counter() - self.started

    @staticmethod
    def _sizes(folder: Path) -> list[tuple[Path, int]]:
        try:
            return [(path, path.stat().st_size) for path in folder.iterdir()]
        except OSError:
            return []


def generate_command(args: list[str], processes: int = 1) -> list[str]:
    """scripts/generate.py as a user runs it: plain python for one process, torchrun for several."""
    from builder.run.launch import torchrun_command

    script = str(ROOT / "scripts" / "generate.py")
    if processes == 1:
        return [sys.executable, script, *args]
    return torchrun_command(script, args, processes)


def run_generator(args: list[str], out_dir: Path, processes: int = 1, cores: set[int] | None = None,
                  first_row: bool = False) -> dict:
    """One whole run (inputs, render, encode, statistics, shards, card) in a subprocess, timed by the generator
    itself after its imports (its JSON summary), with the CPU seconds and peak RSS of every process. With
    `first_row`, `out_dir` is emptied first (a previous run's shards would read as this run's first row) and
    `first_row_s` is measured; otherwise it is None."""
    summary_path = out_dir.with_name(out_dir.name + ".summary.json")
    command = generate_command([*args, "--output-dir", str(out_dir), "--overwrite", "--summary-json",
                                str(summary_path)], processes)
    if first_row:
        shutil.rmtree(out_dir, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = timed_subprocess(command, preexec_fn=(lambda: pin(cores)) if cores else None,
                              out_dir=out_dir if first_row else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(summary_path.read_text())
    return {"rows": summary["rows"]["default"], "all_rows": sum(summary["rows"].values()),
            "seconds": summary["elapsed_s"], "wall_s": result["wall_s"], "first_row_s": result.get("first_row_s"),
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "processes": summary["processes"], "peak_rss_mb": result["peak_rss_mb"],
            "peak_rss_mb_by_role": result["peak_rss_mb_by_role"]}


def timed_subprocess(command: list[str], preexec_fn=None, out_dir: Path | None = None) -> dict:
    """Wall time and per-process peak RSS of a command; with `out_dir` (a generation's folder) also the seconds
    to its first row."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TQDM_DISABLE": "1"}, preexec_fn=preexec_fn)
    first = FirstRowPoller(out_dir, started) if out_dir is not None else None
    with RssPoller(process.pid) as poller, first or contextlib.nullcontext():
        out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": poller.python_peaks_mb(), "peak_rss_mb_by_role": poller.roles_mb(),
            **({"first_row_s": first.first_row_s} if first else {})}
