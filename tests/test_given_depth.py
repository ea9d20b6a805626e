"""Datasets placed by `--bg-depth-dir` maps verify from themselves: the maps are stored in `backgrounds`
(builder.contract.given_depth), unknown pixels kept unknown, placements read back from them by every process;
`verify` of the folder or of its Parquet export needs nothing else and names a tampered stored map."""

from __future__ import annotations

import io
import json
import shutil

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from builder.contract.given_depth import FIRST, PEAK, STEPS, UNKNOWN, GivenDepth
from builder.publish.export import ExportOptions, export
from builder.rows.bg_depth import fit_depth
from builder.verify.runner import verify
from tests.conftest import (Generation, read_config, run_generate_together, run_verify, shard_files,
                            write_tampered_copy)
from tests.test_ground_e2e import GROUND, R, write_scene_inputs

TAMPERED_ROW = 2  # the backgrounds row whose stored map the tamper tests alter


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The demo's ground scenes with their maps as --bg-depth-dir, a block of each map unknown (about 8 x 10 pixels
    at R)."""
    inputs = write_scene_inputs(tmp_path_factory.mktemp("given-in"))
    for path in inputs[2].iterdir():
        disparity = np.load(path)
        disparity[100:140, 40:90] = np.nan
        np.save(path, disparity)
    return inputs


@pytest.fixture(scope="module")
def runs(scene, tmp_path_factory) -> dict[int, object]:
    """The same ground dataset by 1 and 2 processes, side by side."""
    base, (bg_dir, fg_dir, depth_dir) = tmp_path_factory.mktemp("given"), scene
    outs = {processes: base / f"p{processes}" for processes in (1, 2)}
    run_generate_together(*[Generation(out, "--bg-dir", bg_dir, "--fg-dir", fg_dir, "--bg-depth-dir", depth_dir,
                                       "--no-depth", *GROUND, processes=processes) for processes, out in outs.items()])
    return outs


def png(levels: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def tampered(row: dict) -> dict:
    """The row with one known level of its stored map moved by 1, its range kept: still a consistent map."""
    levels = np.asarray(Image.open(io.BytesIO(row["given_depth"]["bytes"]))).copy()
    y, x = np.argwhere((levels > FIRST) & (levels < PEAK))[0]
    levels[y, x] += 1
    return {**row, "given_depth": png(levels)}


def test_encoding_keeps_unknown_unknown_and_the_values_within_half_a_step():
    values = np.linspace(-2.0, 7.0, 64 * 64).reshape(64, 64)
    values[1::3, 1::4] = np.nan
    stored = GivenDepth.of(values)
    assert stored.levels.dtype == np.uint16
    assert np.array_equal(stored.levels == UNKNOWN, np.isnan(values))
    known = stored.levels[stored.levels != UNKNOWN]
    assert (known.min(), known.max()) == (FIRST, PEAK) and (stored.low, stored.high) == (-2.0, 7.0)
    back = stored.values()
    assert np.array_equal(np.isnan(back), np.isnan(values))
    assert np.nanmax(np.abs(back - values)) <= 9.0 / STEPS / 2 + 1e-12
    assert stored.problems("disparity") == []
    constant = GivenDepth.of(np.where(np.isnan(values), np.nan, 3.0))
    assert set(np.unique(constant.levels)) == {UNKNOWN, FIRST} and constant.problems("depth") == []


def test_problems_and_the_hash_catch_an_altered_map():
    stored = GivenDepth.of(np.linspace(1.0, 5.0, 16).reshape(4, 4))
    moved = stored.levels.copy()
    moved[1, 1] += 1
    assert GivenDepth(moved, stored.low, stored.high).sha256() != stored.sha256()
    assert GivenDepth(stored.levels, stored.low, 5.5).sha256() != stored.sha256()
    short = np.minimum(stored.levels, PEAK - 1)
    assert "known levels run 1..65534, not 1..65535" in GivenDepth(short, 1.0, 5.0).problems("depth")[0]
    assert "need finite values with min <= max" in GivenDepth(stored.levels, 5.0, 1.0).problems("depth")[0]
    assert "known distances are above 0" in GivenDepth(stored.levels, 0.0, 5.0).problems("depth")[0]
    assert GivenDepth(stored.levels, 0.0, 5.0).problems("disparity") == []


def test_same_bytes_with_1_and_2_processes(runs, scene):
    files = {processes: shard_files(out) for processes, out in runs.items()}
    assert files[1] and files[1] == files[2]
    manifests = {p: json.loads((out / "manifest.json").read_text()) for p, out in runs.items()}
    assert manifests[1]["inputs"] == manifests[2]["inputs"]
    maps = manifests[1]["inputs"]["bg_depths"]
    assert [m["name"] for m in maps] == sorted(p.name for p in scene[2].iterdir())
    assert all(m["stored_sha256"] for m in maps)
    assert {row["placement_mode"] for row in read_config(runs[1], "default").to_pylist()} == {"ground"}


def test_load_dataset_round_trip_keeps_unknown_unknown(runs, scene):
    loaded = datasets.load_dataset(str(runs[1]), "backgrounds", split="train")
    assert loaded.features["given_depth"] == datasets.Image()
    assert loaded.features["given_depth_min"] == datasets.Value("float32")
    for row in loaded:
        assert row["given_depth"].mode == "I;16"
        levels = np.asarray(row["given_depth"], dtype=np.float64)
        source = np.load(scene[2] / row["source"].replace(".png", ".npy"))
        expected = fit_depth(source, None, R)  # the source map at R, NaN where it has a hole
        assert np.isnan(expected).any() and np.array_equal(levels == 0, np.isnan(expected))
        low, high = row["given_depth_min"], row["given_depth_max"]
        values = low + (levels - 1) / 65534 * (high - low)  # the card's formula
        known = levels > 0
        assert np.abs(values[known] - expected[known]).max() <= (high - low) / 65534 / 2 * 1.001


def test_verify_needs_nothing_else_and_names_a_tampered_map(runs, tmp_path):
    done = run_verify(runs[2])
    assert done.returncode == 0, done.stdout[-3000:]
    table = read_config(runs[1], "backgrounds")
    rows = table.to_pylist()
    rows[TAMPERED_ROW] = tampered(rows[TAMPERED_ROW])
    out = write_tampered_copy(runs[1], tmp_path / "tampered", rows, table.schema, config_name="backgrounds")
    done = run_verify(out)
    assert done.returncode == 1
    assert (f"data/backgrounds/train-00000-of-00001.arrow row {TAMPERED_ROW}: given_depth (its levels and range) is "
            "not the map the manifest records for demo_ground_02.npy") in done.stdout


def test_verify_given_the_folder_makes_the_maps_again(runs, scene, tmp_path):
    """Optional: each map made again from its file against the hash the manifest records for the stored one."""
    report = verify(runs[1], bg_depth_dir=scene[2])
    assert report.ok and any("compared with the maps made again" in note for note in report.notes)
    out = shutil.copytree(runs[1], tmp_path / "other-record")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["inputs"]["bg_depths"][1]["stored_sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    problems = "\n".join(verify(out, bg_depth_dir=scene[2]).problems)
    assert f"{scene[2] / 'demo_ground_01.npy'}: the map made from this file is not the one the manifest" in problems
    assert "row 1: given_depth (its levels and range) is not the map the manifest records" in problems


def test_parquet_export_verifies_alone_and_names_a_tampered_map(runs, tmp_path):
    folder = export(runs[1], tmp_path / "export", ExportOptions("someone/given", license_id="apache-2.0"),
                    progress=False).folder
    done = run_verify(folder)
    assert done.returncode == 0, done.stdout[-3000:]
    path = folder / "data" / "backgrounds" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    cells = table.column("given_depth").to_pylist()
    cells[TAMPERED_ROW] = tampered({"given_depth": cells[TAMPERED_ROW]})["given_depth"]
    index = table.schema.get_field_index("given_depth")
    field = table.schema.field(index)
    pq.write_table(table.set_column(index, field, pa.array(cells, type=field.type)), path)
    done = run_verify(folder)
    assert done.returncode == 1
    assert (f"data/backgrounds/train-00000-of-00001.parquet row {TAMPERED_ROW}: given_depth (its levels and range) "
            "is not the map the manifest records") in done.stdout
