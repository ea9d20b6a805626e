"""Shared helpers: run the real command lines in subprocesses, and a tiny random depth model."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from tests.fault_launcher import HOLDING

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "scripts" / "generate.py"
LAUNCHER = ROOT / "tests" / "fault_launcher.py"  # scripts/generate.py with a fault injected (FGBG_FAULT)
VERIFY = ROOT / "scripts" / "verify.py"
# Small and fast, but with depth from a real (random) model: 4 bg x 3 fg x 2 x 2 = 48 samples, 3 default shards.
SMALL = ["--demo", "--placements", "2", "--depth-input-size", "56", "--shard-size", "20", "--batch-size", "8"]
# For the exports: 2-3 objects per composite (instance_mask, objects), some in pieces, a held-out background; 24 rows.
SCENES = ["--demo", "--no-depth", "--placements", "1", "--resolution", "64", "--objects", "2-3", "--placement-mode",
          "ground", "--validation-backgrounds", "1"]


def env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1",
            "PYTHONUNBUFFERED": "1", **extra}


def generate_cmd(out: Path, *args, processes: int = 1, launcher: str = "torchrun", script: Path = GENERATE
                 ) -> list[str]:
    """The command line a user types: plain python for one process; for several, torchrun or
    `accelerate launch --cpu --num_processes N` (which scripts/generate.py turns into N torchrun processes,
    since accelerate 1.x itself starts only one without MPI)."""
    script = [str(script), "--output-dir", str(out), *map(str, args)]
    if processes == 1:
        return [sys.executable, *script]
    if launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *script]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            *script]


def held_rendezvous():
    """(store, environment) for ranks started by hand: a TCPStore server on a port the OS gives it, held open by
    the caller (keep `store` referenced while the ranks run), which the ranks join as clients, as torchrun's
    workers join their launcher's store. A port probed free and bound later by rank 0 could be taken in between
    by another run on the machine."""
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    return store, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "TORCHELASTIC_USE_AGENT_STORE": "True"}


def run_generate(out: Path, *args, processes: int = 1, launcher: str = "torchrun", check: bool = True,
                 timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    result = subprocess.run(generate_cmd(out, *args, processes=processes, launcher=launcher), capture_output=True,
                            text=True, env=env(), timeout=timeout, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"generate failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


class Generation:
    """A generation started in the background, for independent runs side by side: most of a small run is
    single-threaded start-up (imports, model load), so on two cores two runs take little longer than one. Each
    process's thread count follows its CPU affinity, not the load, so the bytes are those of a run alone. Output
    goes to temporary files, not pipes: a full pipe would stall a run while the test waits for another.

    `fault`: run tests/fault_launcher.py with FGBG_FAULT set to it instead of the plain script."""

    def __init__(self, out: Path, *args, processes: int = 1, launcher: str = "torchrun", fault: str | None = None,
                 **popen):
        self.stdout, self.stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        script, extra = (LAUNCHER, {"FGBG_FAULT": fault}) if fault else (GENERATE, {})
        command = generate_cmd(out, *args, processes=processes, launcher=launcher, script=script)
        self.process = subprocess.Popen(command, stdout=self.stdout, stderr=self.stderr, text=True, env=env(**extra),
                                        **popen)

    def wait_until_held(self, timeout: float = 240) -> None:
        """Return once a run started with a `hold-...` fault says it holds: from then on it is certain to be running
        when the test signals it, however loaded the machine. Fails if the run ends first."""
        deadline = time.monotonic() + timeout
        while HOLDING not in self.stderr_so_far():
            assert self.process.poll() is None, (f"the run ended (exit {self.process.returncode}) before it held:\n"
                                                 f"{self.stderr_so_far()[-3000:]}")
            assert time.monotonic() < deadline, f"the run did not hold within {timeout} s"
            time.sleep(0.05)

    def stderr_so_far(self) -> str:
        """Read with pread: the run writes through the same file offset, which a seek here would move."""
        fd = self.stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        outputs = []
        for file in (self.stdout, self.stderr):
            file.seek(0)
            outputs.append(file.read())
            file.close()
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, *outputs)


def run_generate_together(*runs: Generation) -> list[subprocess.CompletedProcess]:
    """Wait for generations started side by side; each must succeed (all are waited for before any failure is
    raised, so none is left running)."""
    results = [run.wait() for run in runs]
    for result in results:
        if result.returncode != 0:
            raise AssertionError(f"generate failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return results


def finished_shards(out: Path) -> dict[Path, tuple[int, int, int]]:
    """(inode, mtime_ns, rows) of every shard that has its done marker: a rerun must keep these files as they are."""
    from builder.store.output import OutputStore

    shards = {}
    for marker in OutputStore(out).done_markers():
        path = out / marker.name.relative_path()
        shards[path] = (path.stat().st_ino, path.stat().st_mtime_ns, marker.rows)
    return shards


def killed_after_first_shard(out: Path, *args) -> dict[Path, tuple[int, int, int]]:
    """A one-process run into `out`, SIGKILLed once its first `default` shard is finished (it holds there until
    the kill lands, tests/fault_launcher.py, so it cannot finish first): its finished shards (see
    `finished_shards`), to resume from."""
    run = Generation(out, *args, fault="hold-after-marker:default")
    run.wait_until_held()
    run.process.send_signal(signal.SIGKILL)
    assert run.wait().returncode == -signal.SIGKILL
    assert not (out / "stats.json").exists(), "the run finished before it could be killed"
    assert not list((out / "data").rglob("*.tmp"))
    before = finished_shards(out)
    assert before, "no finished shard to resume from"
    return before


def assert_reused(out: Path, before: dict[Path, tuple[int, int, int]], rerun_log: str) -> None:
    """The rerun resumed instead of starting over: finished shards untouched, and it wrote only the other rows."""
    after = {path: (path.stat().st_ino, path.stat().st_mtime_ns, rows) for path, (_, _, rows) in before.items()}
    assert after == before, "the rerun rewrote shards that were already finished"
    written = int(re.search(r"this run wrote ([\d,]+) rows", rerun_log).group(1).replace(",", ""))
    total = sum(json.loads((out / "stats.json").read_text())["rows"].values())
    assert written == total - sum(rows for _, _, rows in before.values()), rerun_log[-2000:]


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def soft_disc_rgba(size: tuple[int, int], seed: int) -> Image.Image:
    """A coloured disc with a soft edge on a transparent canvas, off-centre so cropping matters."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    radius = min(width, height) * 0.35
    distance = np.hypot(xx - width * 0.55, yy - height * 0.45)
    alpha = np.clip((radius - distance) * 40, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(np.dstack([colour, alpha]), "RGBA")


def write_inputs(root: Path, n_bg: int = 2, n_fg: int = 2) -> tuple[Path, Path]:
    """Backgrounds in several encodings and sizes; RGBA and palette-with-transparency cut-outs."""
    bg_dir, fg_dir = root / "bg", root / "fg"
    bg_dir.mkdir(parents=True)
    fg_dir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n_bg):
        array = rng.integers(0, 256, (180 + 20 * i, 260, 3), dtype=np.uint8)
        image = Image.fromarray(array, "RGB")
        if i % 2 == 0:
            (bg_dir / f"bg_{i:02d}.jpg").write_bytes(encoded(image, "JPEG", quality=90))
        else:
            (bg_dir / f"bg_{i:02d}.png").write_bytes(encoded(image.convert("L"), "PNG"))
    for i in range(n_fg):
        image = soft_disc_rgba((90 + 10 * i, 70 + 15 * i), seed=i)
        if i % 2 == 1:  # palette PNG whose index 0 is transparent
            quantized = image.convert("RGB").quantize(63)
            pixels = np.asarray(quantized).astype(np.uint8) + 1
            pixels[np.asarray(image)[..., 3] < 128] = 0
            palette = Image.fromarray(pixels, "P")
            palette.putpalette([0, 0, 0] + quantized.getpalette()[: 63 * 3])
            (fg_dir / f"fg_{i:02d}.png").write_bytes(encoded(palette, "PNG", transparency=0))
        else:
            (fg_dir / f"fg_{i:02d}.png").write_bytes(encoded(image, "PNG"))
    return bg_dir, fg_dir


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    return write_inputs(tmp_path / "inputs")


def run_verify(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFY), str(out), *args], capture_output=True, text=True,
                          env=env(), timeout=300)


def read_config(out: Path, config_name: str) -> pa.Table:
    """All shards of a config, every split, in shard order, as one table (read through the store)."""
    from builder.store.reader import open_dataset

    dataset = open_dataset(out)
    return pa.Table.from_batches([batch for split in dataset.splits(config_name)
                                  for batch in dataset.batches(config_name, split)])


def shard_files(out: Path) -> dict[str, bytes]:
    """Every shard file's bytes by its path under the dataset folder."""
    from builder.store.storage import open_folder

    folder = open_folder(out)
    return {relative: folder.read_bytes(relative) for relative in folder.matching("data/*/*.arrow")}


def column_bytes(out: Path, config_name: str, column: str) -> list[bytes]:
    return [cell["bytes"] for cell in read_config(out, config_name).column(column).to_pylist()]


@pytest.fixture(scope="session", autouse=True)
def private_datasets_cache(tmp_path_factory):
    """A datasets cache of this session's own. datasets keys its cache of a local folder by the folder's name
    and its data files' names and sizes, so `load_dataset(".../out")` could otherwise return another run's
    rows (seen: a dataset whose depth was attached to the wrong rows loaded as an earlier, correct run)."""
    import datasets

    original = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("datasets-cache")
    yield
    datasets.config.HF_DATASETS_CACHE = original


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from builder.testing.random_model import save_random_depth_model

    return save_random_depth_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def small_args(tiny_model) -> list[str]:
    return [*SMALL, "--depth-model", str(tiny_model)]


def shared_run_args(name: str, request) -> list:
    """The generate arguments of a shared (session) run, by its fixture's name."""
    if name == "reference_dataset":
        return request.getfixturevalue("small_args")
    if name == "scenes_reference":
        return SCENES
    return [*SMALL, "--no-depth"]


@pytest.fixture(scope="session", autouse=True)
def started_shared_runs(request, tmp_path_factory) -> dict[str, tuple[Path, Generation]]:
    """The shared runs that the selected tests use, started in the background as the session begins: they run
    beside the first modules' tests instead of holding up the first test that needs them."""
    needed = {name for item in request.session.items for name in item.fixturenames}
    runs = {}
    for name in ("reference_dataset", "no_depth_reference", "scenes_reference"):
        if name in needed:
            out = tmp_path_factory.mktemp(name) / "out"
            runs[name] = out, Generation(out, *shared_run_args(name, request))
    yield runs
    for _, run in runs.values():  # none left running when no test waited for it
        run.process.wait()


def shared_run(name: str, request, tmp_path_factory, started: dict) -> Path:
    """The shared run, once it has finished; run here when it was not started early (a test that asks for it
    by request.getfixturevalue is not seen in advance)."""
    if name in started:
        out, run = started[name]
        run_generate_together(run)
        return out
    out = tmp_path_factory.mktemp(name) / "out"
    run_generate(out, *shared_run_args(name, request))
    return out


@pytest.fixture(scope="session")
def reference_dataset(request, tmp_path_factory, started_shared_runs) -> Path:
    """One uninterrupted run of the small settings, shared (read-only) by the tests."""
    return shared_run("reference_dataset", request, tmp_path_factory, started_shared_runs)


@pytest.fixture(scope="session")
def no_depth_reference(request, tmp_path_factory, started_shared_runs) -> Path:
    """One uninterrupted run of the small settings without depth, shared (read-only) by the tests: copy it
    before writing into it (a push stages its export inside the dataset folder)."""
    return shared_run("no_depth_reference", request, tmp_path_factory, started_shared_runs)


@pytest.fixture(scope="session")
def scenes_reference(request, tmp_path_factory, started_shared_runs) -> Path:
    """One run of SCENES, shared (read-only) by the export tests: copy it before writing into it."""
    return shared_run("scenes_reference", request, tmp_path_factory, started_shared_runs)


def write_tampered_copy(source: Path, out: Path, rows: list[dict], schema: pa.Schema,
                        config_name: str = "default") -> Path:
    """A copy of a generated folder whose `config_name` rows are replaced by `rows`, all in its first shard: verify
    must then name each altered row."""
    shutil.copytree(source, out, symlinks=True)
    shards = sorted((out / "data" / config_name).glob("*.arrow"))
    for path in shards:
        path.unlink()
    with pa.OSFile(str(shards[0]), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return out
