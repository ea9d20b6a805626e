"""Checksums: every shard's sha256 is recorded as it is written (its done marker), every export file's in
checksums.json; `verify --checksums` compares them, a full verify does so first, and a push compares the Hub's
reported hashes with the export's."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from builder.publish.export import ExportOptions
from builder.publish.export import export as export_dataset
from builder.verify.runner import verify
from tests.conftest import SMALL, run_verify
from tests.fake_hub import FakeHub
from tests.test_hub import REPO, TOKEN, push

SHARD = "data/default/train-00001-of-00003.arrow"
NO_DEPTH = [*SMALL, "--no-depth"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory, no_depth_reference) -> Path:
    """This module's copy of the shared run (a push stages its export inside the folder)."""
    out = tmp_path_factory.mktemp("plain") / "out"
    shutil.copytree(no_depth_reference, out)
    return out


@pytest.fixture
def dataset(plain, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(plain, out)
    return out


def message_offsets(path: Path) -> list[tuple[int, int]]:
    """(start, metadata length) of each message of an Arrow IPC stream: 0xFFFFFFFF, int32 length, flatbuffer
    metadata, then the body (bodyLength is read from the metadata by pyarrow; we walk with its reader)."""
    data = path.read_bytes()
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(data))
    offsets, position = [], 0
    while position < len(data):
        marker, length = struct.unpack_from("<Ii", data, position)
        if length == 0:
            break
        assert marker == 0xFFFFFFFF
        message = reader.read_next_message()
        offsets.append((position, length))
        position += 8 + length + message.body.size
    return offsets


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_marker_holds_the_sha256_of_the_file(plain):
    import hashlib

    marker = json.loads((plain / ".fgbg" / "done" / "default-train-00001-of-00003.json").read_text())
    assert marker["sha256"] == hashlib.sha256((plain / SHARD).read_bytes()).hexdigest()


def test_good_dataset_passes(plain):
    done = run_verify(plain, "--checksums")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checksums: 5 file(s)" in done.stdout  # 3 default + 1 backgrounds + 1 foregrounds shard


@pytest.mark.parametrize("where", ["schema message", "record batch header", "last image byte"])
def test_a_flipped_byte_anywhere_fails_naming_the_shard(dataset, where):
    path = dataset / SHARD
    (schema_at, schema_length), (batch_at, batch_length) = message_offsets(path)[:2]
    offset = {"schema message": schema_at + 8 + schema_length // 2,
              "record batch header": batch_at + 8 + batch_length // 2,
              "last image byte": path.stat().st_size - 64}[where]
    flip(path, offset)
    done = run_verify(dataset, "--checksums")
    assert done.returncode == 1
    assert f"FAIL {SHARD}: sha256" in done.stdout and "recorded when it was written" in done.stdout
    assert "FAILED: 1 problem(s)" in done.stdout  # only the one shard


def test_full_verify_checks_the_checksums_first(dataset):
    path = dataset / SHARD
    batch_at, batch_length = message_offsets(path)[1]
    flip(path, batch_at + 8 + batch_length // 2)
    report = verify(dataset)
    assert not report.ok
    assert report.problems[0].startswith(f"{SHARD}: sha256")


def test_marker_without_checksum_is_reported(dataset):
    marker = dataset / ".fgbg" / "done" / "default-train-00001-of-00003.json"
    data = json.loads(marker.read_text())
    del data["sha256"]
    marker.write_text(json.dumps(data))
    done = run_verify(dataset, "--checksums")
    assert done.returncode == 1 and f"FAIL {SHARD}: its done marker has no sha256" in done.stdout
    report = verify(dataset)  # the rows are checked: an older dataset still passes, with a note
    assert report.ok and any(note.startswith(f"{SHARD}: its done marker has no sha256") for note in report.notes)


def test_export_checksums(plain, tmp_path):
    export = tmp_path / "export"
    result = export_dataset(plain, export, ExportOptions(REPO, "cc-by-4.0"), progress=False)
    listed = {f["path"]: f for f in json.loads((export / "checksums.json").read_text())["files"]}
    parquet = [f["path"] for files in result.files.values() for f in files]
    assert set(parquet) < set(listed) and {"README.md", "manifest.json", "stats.json"} < set(listed)
    assert run_verify(export, "--checksums").returncode == 0

    victim = export / parquet[0]
    flip(victim, victim.stat().st_size // 2)
    for args in (["--checksums"], []):
        done = run_verify(export, *args)
        assert done.returncode == 1 and f"FAIL {parquet[0]}: sha256" in done.stdout, done.stdout


def test_push_compares_the_hubs_hashes(plain, tmp_path):
    home = tmp_path / "home"
    with FakeHub(TOKEN) as fake:
        done = push(plain, "--license", "cc-by-4.0", hub=fake, home=home)
        assert done.returncode == 0, done.stderr
        assert "match the export's checksums" in done.stderr

    staged = plain / ".fgbg" / "hub"
    parquet = min(staged.glob("data/default/*.parquet")).relative_to(staged).as_posix()
    with FakeHub(TOKEN, misreport=(parquet, "README.md")) as fake:
        done = push(plain, "--license", "cc-by-4.0", hub=fake, home=home)
        assert done.returncode == 1
        assert f"{parquet}: the Hub reports sha256" in done.stderr
        assert "README.md: the Hub's git blob id" in done.stderr
        assert "rerun the same command" in done.stderr


def test_push_exports_again_when_the_staged_export_changed(plain, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(plain, out)
    export_args = ["--license", "cc-by-4.0"]
    with FakeHub(TOKEN) as fake:
        assert push(out, *export_args, hub=fake, home=tmp_path / "home").returncode == 0
        victim = min((out / ".fgbg" / "hub").glob("data/default/*.parquet"))
        flip(victim, victim.stat().st_size // 2)
        again = push(out, *export_args, hub=fake, home=tmp_path / "home")
        assert again.returncode == 0, again.stderr
        assert "changed since it was written" in again.stderr and "reusing" not in again.stderr
        assert run_verify(out / ".fgbg" / "hub", "--checksums").returncode == 0
