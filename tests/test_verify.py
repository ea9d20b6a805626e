"""`verify` passes on generated data and fails, naming the shard and row, on data corrupted in known ways."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from builder.verify.checks import composite_tolerance
from builder.verify.runner import VerifyUsageError, verify
from tests.conftest import read_config, run_verify

SHARD1 = "data/default/train-00001-of-00003.arrow"


@pytest.fixture
def dataset(reference_dataset, tmp_path) -> Path:
    """A private copy to corrupt."""
    out = tmp_path / "out"
    shutil.copytree(reference_dataset, out)
    return out


def rewrite_shard(path: Path, change) -> None:
    """Rewrite an Arrow stream shard with `change(rows)` applied to its rows (same schema)."""
    with pa.memory_map(str(path), "r") as source:
        reader = pa.ipc.open_stream(source)
        schema, rows = reader.schema, reader.read_all().to_pylist()
    change(rows)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def png(array: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def failures(report) -> str:
    return "\n".join(report.problems)


def test_passes_on_generated_data(reference_dataset):
    result = run_verify(reference_dataset)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: every check passed" in result.stdout
    assert "48 rows with images decoded" in result.stdout
    assert "stats.json: recomputed from every image" in result.stdout


def test_sample_mode_decodes_n_rows_per_shard(reference_dataset):
    report = verify(reference_dataset, sample=3)
    assert report.ok, failures(report)
    assert report.image_checked["default"] == 3 * 3  # 3 shards
    assert report.rows["default"] == 48 and not report.stats_checked


def test_flipped_byte_in_a_composite(dataset):
    path = dataset / SHARD1
    target = read_config(dataset, "default").column("fg_bg").to_pylist()[25]["bytes"]  # shard 1, row 5
    data = bytearray(path.read_bytes())
    offset = data.find(target)
    assert offset > 0
    data[offset + len(target) // 2] ^= 0xFF  # inside the entropy-coded data: same size, marker still agrees
    path.write_bytes(bytes(data))
    result = run_verify(dataset)
    assert result.returncode == 1
    assert f"FAIL {SHARD1} row 5: sample_id 25:" in result.stdout, result.stdout
    assert "stats.json: fg_bg differs" in result.stdout  # the decoded pixels no longer add up either


def test_flipped_byte_in_a_mask_png(dataset):
    path = dataset / SHARD1
    target = read_config(dataset, "default").column("mask").to_pylist()[22]["bytes"]  # shard 1, row 2
    data = bytearray(path.read_bytes())
    offset = data.find(target)
    data[offset + len(target) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify(dataset)
    assert not report.ok
    assert any(p.startswith(f"{SHARD1} row 2: sample_id 22: mask") for p in report.problems), failures(report)


def test_missing_shard(dataset):
    (dataset / SHARD1).unlink()
    result = run_verify(dataset)
    assert result.returncode == 1
    assert "FAIL data/default/train-00001-of-00003: shard is missing" in result.stdout
    assert "20 sample_id(s) missing, e.g. [20, 21" in result.stdout
    assert "28 train rows, but the sample space of manifest.json and its split settings give 48" in result.stdout
    assert "done marker without its shard file" in result.stdout


def test_wrong_mask(dataset):
    def shift_mask(rows):
        mask = np.asarray(Image.open(io.BytesIO(rows[7]["mask"]["bytes"])))
        rows[7]["mask"] = png(np.roll(mask, 1, axis=1))  # a valid PNG, one pixel off

    rewrite_shard(dataset / SHARD1, shift_mask)
    report = verify(dataset)
    text = failures(report)
    assert f"{SHARD1} row 7: sample_id 27: mask differs in" in text
    assert "from foreground" in text and "bbox" in text  # the stored bbox no longer fits the mask
    assert f"{SHARD1}: is " in text and "its done marker says" in text  # the size changed too


def test_wrong_placement_and_ids(dataset):
    def tamper(rows):
        rows[0]["x"] += 1
        rows[1]["fg_id"] = (rows[1]["fg_id"] + 1) % 3

    rewrite_shard(dataset / SHARD1, tamper)
    text = failures(verify(dataset, sample=1))  # metadata is checked on every row, even in a quick pass
    assert f"{SHARD1} row 0: sample_id 20: (x, y, scale) =" in text
    assert f"{SHARD1} row 1: sample_id 21 is (bg_id, fg_id, flip)" in text


def test_composite_from_another_background(dataset):
    backgrounds = read_config(dataset, "backgrounds").column("image").to_pylist()

    def swap(rows):
        # Paste row 3's own foreground region onto the wrong background: the mask stays right.
        row = rows[3]
        ours = np.asarray(Image.open(io.BytesIO(row["fg_bg"]["bytes"]))).copy()
        other = np.asarray(Image.open(io.BytesIO(backgrounds[(row["bg_id"] + 1) % 4]["bytes"])))
        x0, y0, x1, y1 = row["bbox"]
        other = other.copy()
        other[y0:y1, x0:x1] = ours[y0:y1, x0:x1]
        buffer = io.BytesIO()
        Image.fromarray(other).save(buffer, format="JPEG", quality=95)
        row["fg_bg"] = {"bytes": buffer.getvalue(), "path": None}

    rewrite_shard(dataset / SHARD1, swap)
    text = failures(verify(dataset))
    assert f"{SHARD1} row 3: sample_id 23: " in text and "outside the pasted area differ" in text


def test_duplicate_sample_and_schema(dataset):
    def duplicate(rows):
        rows[4] = dict(rows[3])

    rewrite_shard(dataset / SHARD1, duplicate)
    text = failures(verify(dataset, sample=1))
    assert "1 sample_id(s) missing, e.g. [24]" in text
    assert "1 sample_id(s) appear more than once, e.g. [23]" in text


def test_bad_depth_range(dataset):
    rewrite_shard(dataset / SHARD1, lambda rows: rows[2].update(depth_min=float("nan")))
    text = failures(verify(dataset, sample=1))
    assert f"{SHARD1} row 2: sample_id 22: depth_min nan" in text


def test_stats_mismatch(dataset):
    stats = json.loads((dataset / "stats.json").read_text())
    stats["kinds"]["mask"]["sums"][0] += 255
    (dataset / "stats.json").write_text(json.dumps(stats))
    result = run_verify(dataset)
    assert result.returncode == 1
    assert "FAIL stats.json: mask differs from the recomputation: sums [" in result.stdout
    assert "FAILED: 1 problem(s)" in result.stdout  # nothing else is blamed


def test_unfinished_shard_and_missing_card(dataset):
    (dataset / ".fgbg" / "done" / "default-train-00002-of-00003.json").unlink()
    (dataset / "README.md").unlink()
    (dataset / "data" / "default" / ".train-00002-of-00003.arrow.123.tmp").write_bytes(b"half")
    text = failures(verify(dataset, sample=1))
    assert "data/default/train-00002-of-00003.arrow: no done marker" in text
    assert "README.md: missing" in text
    assert "data/default/.train-00002-of-00003.arrow.123.tmp: unexpected file" in text


def test_leftover_temp_files_are_noted(dataset):
    (dataset / "images" / ".fg_bg.png.4242.tmp").write_bytes(b"partial")
    report = verify(dataset, sample=1)
    assert report.ok and "1 temp file(s) of an interrupted run, e.g. images/.fg_bg.png.4242.tmp" in report.notes[0]


def test_truncated_shard(dataset):
    path = dataset / SHARD1
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    text = failures(verify(dataset, sample=1))
    assert f"{SHARD1}: unreadable after" in text or f"{SHARD1}: unreadable" in text


def test_not_a_dataset(tmp_path):
    with pytest.raises(VerifyUsageError, match="manifest.json is missing"):
        verify(tmp_path)
    assert run_verify(tmp_path / "nope").returncode == 2


def test_parquet_export_layout(reference_dataset, tmp_path):
    """The same checks on a Parquet folder (the `--export-only` layout: data/<config>/*.parquet + card)."""
    out = tmp_path / "export"
    out.mkdir()
    for name in ("default", "backgrounds", "foregrounds"):
        (out / "data" / name).mkdir(parents=True)
        for path in sorted((reference_dataset / "data" / name).glob("*.arrow")):
            with pa.memory_map(str(path), "r") as source:
                table = pa.ipc.open_stream(source).read_all()
            pq.write_table(table, out / "data" / name / path.with_suffix(".parquet").name, row_group_size=7)
    for name in ("manifest.json", "stats.json"):
        shutil.copy(reference_dataset / name, out / name)
    (out / "README.md").write_text((reference_dataset / "README.md").read_text().replace(".arrow", ".parquet"))
    report = verify(out)
    assert report.ok, failures(report)
    assert report.layout == "parquet export" and report.stats_checked
    (out / "data/default/train-00001-of-00003.parquet").unlink()
    assert "shard is missing" in failures(verify(out, sample=1))


def test_tolerance_is_tight_enough_to_matter():
    mean_limit, block_limit = composite_tolerance(95)
    assert mean_limit < 10 and block_limit < 32  # a wrong background or foreground is far above these
    assert composite_tolerance(50)[0] > mean_limit  # and coarser JPEG gets more room


def test_memory_stays_flat_as_rows_grow(tmp_path):
    """Peak Python/numpy allocation of a full verify does not grow with the row count (20x rows here, in one
    shard each, so reading a whole shard at once would show: it doubles the peak at these sizes).

    Shards are memory-mapped and read one record batch at a time; what grows is only the sample-id bitmap
    (1 byte per sample: 400 KB at 400,000 rows).
    """
    import tracemalloc

    from builder.contract.settings import GenerateConfig
    from builder.publish import card
    from builder.run.launch import generate

    peaks = {}
    for placements in (2, 40):
        out = tmp_path / f"k{placements}"
        generate(GenerateConfig.from_kwargs(output_dir=out, demo=True, no_depth=True, resolution=32,
                                            placements=placements, shard_size=10_000, batch_size=16), card)
        tracemalloc.start()
        report = verify(out, workers=1)
        peaks[placements] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.ok, failures(report)
        assert report.rows["default"] == 4 * 3 * 2 * placements
    assert peaks[40] < peaks[2] * 1.2, peaks


def test_depth_is_recomputed_with_the_manifest_model(dataset):
    """verify --depth N runs the model again: a map attached to another row fails, the data as made passes."""
    report = verify(dataset, sample=1, depth_rows=20)
    assert report.ok, failures(report)
    assert report.depth_checked == {"default": 48, "backgrounds": 4}

    def swap_depth(rows):
        for key in ("depth", "depth_min", "depth_max"):
            rows[4][key], rows[5][key] = rows[5][key], rows[4][key]

    rewrite_shard(dataset / SHARD1, swap_depth)
    text = failures(verify(dataset, sample=1, depth_rows=20))
    assert f"{SHARD1} sample_id 24: depth differs from the model's prediction for this row's fg_bg" in text
    assert f"{SHARD1} sample_id 25: depth differs" in text and "sample_id 26" not in text


def test_depth_check_says_when_the_model_is_missing(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["settings"]["depth_model"] = str(dataset / "no-such-model")
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    result = run_verify(dataset, "--depth", "2")
    assert result.returncode == 2
    assert "verify --depth: the dataset's depth model" in result.stderr and "not available here" in result.stderr
