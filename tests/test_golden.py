"""Golden hashes: the sha256 of every output file of small fixed runs, stored in tests/golden/<run>.json, so
output bytes cannot change unnoticed. No git history is needed (a shallow clone or a source tarball checks the
same), and a difference fails, never skips.

What is hashed is what any machine writes alike, given the same library versions:

- runs with `--no-depth`, in full: every shard, stats.json, every grid, every done marker, and manifest.json
  less its library versions (the README holds the folder's path, so it is left out);
- the run with depth (a tiny random model): every column of every shard but `depth`, `depth_min` and
  `depth_max`, stats.json less the depth kind and the byte counts (depth PNG sizes), and the grids but depth's.
  Depth comes from float32 kernels whose rounding depends on the CPU's vector code paths and the thread count,
  so its bytes are not the same on every machine (tests/test_determinism.py checks them on one machine).

Each run is checked on 1 and 2 processes where listed: both must give the same hashes.

Checked for CPU independence on 2026-11-29 (AMD EPYC with AVX-512): the demo's rows, `--augment none` and
`realistic`, and a Pillow PNG rendered by the row functions natively and under valgrind (which hides AVX-512,
so numpy, ISA-L and zlib-ng take their AVX2 code paths) hashed the same. Mask, alpha and depth PNGs have been
deflated by the standard library's zlib since (ISA-L's stream varied between processes: docs/determinism.md), and
depth PNGs by libdeflate (the pinned `deflate` package) since 2026-12-06: the run with depth's stats.json hash
changed then (the backgrounds' depth byte count), its pixels did not.

Updating the hashes on purpose: when a change alters output bytes by intent (a contract change), run

    FGBG_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

read `git diff tests/golden`, and commit the new hashes in the same commit as the change, its message saying
why the bytes changed. An upgrade of Pillow (libjpeg-turbo, zlib-ng), the system's zlib or pyarrow may change them too; say
so in that commit's message. Never update them to silence a difference nobody can explain.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import Generation, read_config, run_generate_together

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("FGBG_UPDATE_GOLDEN") == "1"
BASE = ["--demo", "--placements", "2", "--shard-size", "20"]
DEPTH_COLUMNS = ("depth", "depth_min", "depth_max")
RUNS = {  # name: (arguments after BASE, process counts)
    "default": (["--no-depth"], (1, 2)),
    "realistic": (["--no-depth", "--augment", "realistic"], (1,)),
    "splits": (["--no-depth", "--validation-backgrounds", "1", "--validation-foregrounds", "1"], (2,)),
    "depth": (["--depth-input-size", "56", "--batch-size", "8"], (1,)),
    "ground": (["--no-depth", "--placement-mode", "ground"], (1, 2)),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


def full_hashes(out: Path) -> dict[str, str]:
    paths = [*out.glob("data/*/*.arrow"), out / "stats.json", *out.glob("images/*.png"), *out.glob(".fgbg/done/*")]
    hashes = {path.relative_to(out).as_posix(): sha256(path.read_bytes()) for path in paths}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("versions")
    return {**hashes, "manifest.json without versions": sha256(canonical(manifest))}


def without_depth_stats(part: dict) -> dict:
    part = {key: value for key, value in part.items() if key not in ("num_bytes", "data_bytes")}
    part["kinds"] = {kind: value for kind, value in part["kinds"].items() if kind != "depth"}
    if "splits" in part:
        part["splits"] = {split: without_depth_stats(value) for split, value in part["splits"].items()}
    return part


def table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def depth_free_hashes(out: Path) -> dict[str, str]:
    """Everything of a run with depth that does not come from the model's float kernels."""
    hashes = {}
    for config in ("default", "backgrounds", "foregrounds"):
        table = read_config(out, config)
        kept = table.drop_columns([c for c in DEPTH_COLUMNS if c in table.column_names])
        hashes[f"data/{config} without depth columns"] = sha256(table_bytes(kept))
    stats = without_depth_stats(json.loads((out / "stats.json").read_text()))
    hashes["stats.json without depth"] = sha256(canonical(stats))
    for grid in sorted(out.glob("images/*.png")):
        if grid.name != "depth.png":
            hashes[grid.relative_to(out).as_posix()] = sha256(grid.read_bytes())
    return hashes


CASES = [(name, processes) for name, (_, counts) in RUNS.items() for processes in counts]


@pytest.fixture(scope="module")
def started(request, tmp_path_factory, tiny_model) -> dict[tuple[str, int], tuple[Path, Generation]]:
    """The selected cases' runs, all started side by side when the first case is checked (most of a small run is
    single-threaded start-up, and each process's thread count follows its CPU affinity, not the load); each case
    then waits for its own."""
    cases = [(item.callspec.params["name"], item.callspec.params["processes"]) for item in request.session.items
             if item.module is request.module and item.originalname == "test_output_bytes_match_the_golden_hashes"]
    runs = {}
    for name, processes in cases:
        args, _ = RUNS[name]
        out = tmp_path_factory.mktemp(f"golden-{name}-{processes}") / "out"
        model = ["--depth-model", tiny_model] if "--no-depth" not in args else []
        runs[name, processes] = out, Generation(out, *BASE, *args, *model, processes=processes)
    yield runs
    for _, run in runs.values():  # none left running when a case failed before waiting for its run
        run.process.wait()


@pytest.mark.parametrize("name, processes", CASES, ids=[f"{name}-{p}" for name, p in CASES])
def test_output_bytes_match_the_golden_hashes(started, name, processes):
    args, counts = RUNS[name]
    out, run = started[name, processes]
    run_generate_together(run)
    depth = "--no-depth" not in args
    got = depth_free_hashes(out) if depth else full_hashes(out)
    path = GOLDEN / f"{name}.json"
    if UPDATE and processes == counts[0]:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"arguments": BASE + args, "sha256": got}, indent=2, sort_keys=True) + "\n")
        return
    want = json.loads(path.read_text())["sha256"]
    changed = sorted(key for key in set(want) | set(got) if want.get(key) != got.get(key))
    assert not changed, (f"{name} on {processes} process(es): output bytes differ from tests/golden/{name}.json "
                         f"in {changed}. If the change is intended, update the hashes as this module's docstring "
                         "says; otherwise the change broke byte identity.")
