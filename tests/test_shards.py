"""The store's done marker and its one completeness check: `DoneMarker` writes the bytes the marker always had
(format 1 has no `format` key) and reads them back; `shard_state` and `finished` say which shards are unfinished
and why; the finish and the export refuse an unfinished dataset by the same check."""

from __future__ import annotations

import json
import shutil

import pytest

from builder.contract.errors import FgbgError, UsageError
from builder.contract.plan import ShardName
from builder.contract.settings import GenerateConfig
from builder.publish.export import find_sources
from builder.rows.configs import dataset_tasks
from builder.run.pipeline import load_job, run_shards
from builder.store.marker import DoneMarker, MarkerError
from builder.store.names import marker_path
from builder.store.output import OutputStore

SETTINGS = {"demo": True, "no_depth": True, "placements": 2, "shard_size": 10, "resolution": 64}
# what the marker held before DoneMarker, key for key (the dict literal shards.py wrote)
MARKER_KEYS = {"config_name", "split", "shard_index", "num_shards", "start", "stop", "rows", "file_bytes", "sha256",
               "stats"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A finished folder's shards and markers (no card): every shard written by one in-process rank."""
    out = tmp_path_factory.mktemp("store") / "out"
    config = GenerateConfig.from_kwargs(output_dir=out, **SETTINGS)
    job = load_job(config, device=None)
    store = OutputStore(out)
    store.prepare(job.manifest(), overwrite=False)
    return store, run_shards(job, store, 0, 1)


def test_marker_bytes_and_round_trip(written):
    store, tasks = written
    data = json.loads(store.marker_bytes(tasks[0].name.marker_name))
    assert set(data) == MARKER_KEYS  # no "format" key: format 1 is the layout markers always had
    marker = store.marker(tasks[0].name)
    assert (marker.name, marker.start, marker.stop, marker.rows) == (tasks[0].name, 0, 10, 10)
    assert marker.file_bytes == (store.root / tasks[0].name.relative_path()).stat().st_size
    assert marker.to_json() == data
    assert set(marker.stats) == {"fg_bg", "mask"}


def test_formats_and_damage(written):
    store, tasks = written
    data = json.loads(store.marker_bytes(tasks[0].name.marker_name))
    cases = {"later": {**data, "format": 2}, "no-rows": {k: v for k, v in data.items() if k != "rows"},
             "negative": {**data, "rows": -1}, "text": "not json"}
    for name, content in cases.items():
        raw = (content if isinstance(content, str) else json.dumps(content)).encode()
        with pytest.raises(MarkerError, match=f"unreadable done marker {name}.json"):
            DoneMarker.from_bytes(raw, f"{name}.json")
    with pytest.raises(MarkerError, match=r"format 2 is not this version's \(1\)"):
        DoneMarker.from_bytes(json.dumps(cases["later"]).encode(), "later.json")
    legacy = {k: v for k, v in data.items() if k != "sha256"}  # written before checksums were recorded
    assert DoneMarker.from_bytes(json.dumps(legacy).encode(), "legacy.json").sha256 is None


def test_shard_state_names_what_is_unfinished(written, tmp_path):
    store, tasks = written
    shutil.copytree(store.root, tmp_path / "copy")
    copy = OutputStore(tmp_path / "copy")
    first, second, third, fourth = tasks[:4]
    (copy.root / marker_path(first.name)).unlink()
    (copy.root / second.name.relative_path()).unlink()
    (copy.root / third.name.relative_path()).write_bytes(b"short")
    (copy.root / marker_path(fourth.name)).write_text("{")
    assert copy.shard_state(first.name) == (None, f"no done marker .fgbg/done/{first.name.marker_name}: the shard "
                                                  "was never finished")
    assert copy.shard_state(second.name)[1] == "missing, though its done marker is there"
    assert copy.shard_state(third.name)[1].startswith("is 5 bytes, its done marker says ")
    assert copy.shard_state(fourth.name)[1].startswith(f"unreadable done marker {fourth.name.marker_name}")
    assert copy.shard_state(tasks[4].name) == (store.marker(tasks[4].name), None)
    markers, unfinished = copy.finished(tasks)
    assert len(markers) == len(tasks) - 4
    assert [line.split(":")[0] for line in unfinished] == [t.name.relative_path() for t in (first, second, third, fourth)]
    with pytest.raises(FgbgError, match=f"4 of {len(tasks)} shard"):
        copy.finished_markers(tasks)


def test_marker_rows_must_match_the_plan(written):
    store, tasks = written
    shorter = [type(tasks[0])(tasks[0].name, 0, 9)]
    assert store.finished(shorter)[1] == [f"{tasks[0].name.relative_path()}: its done marker says 10 rows, the "
                                          "manifest's sample space gives 9"]


def test_the_manifest_gives_every_shard(written):
    store, tasks = written
    manifest = store.read_manifest()
    assert dataset_tasks(manifest.split_plan(), manifest.settings.shard_size) == tasks


def test_export_refuses_by_the_same_check(written, tmp_path):
    store, tasks = written
    with pytest.raises(UsageError) as caught:  # no card yet, and (after this) one shard unfinished
        marker = store.root / marker_path(tasks[1].name)
        saved = marker.read_bytes()
        marker.unlink()
        try:
            find_sources(store.root)
        finally:
            marker.write_bytes(saved)
    text = str(caught.value)
    assert "missing stats.json" in text and "missing README.md" in text
    assert f"config 'default': 1 of {sum(t.config_name == 'default' for t in tasks)} train shards unfinished: " \
           f"{tasks[1].name.relative_path()}: no done marker" in text


def test_marker_names_read_back_as_their_shards(written):
    """One definition both ways: a marker's file name gives back its shard (verify's orphan check, the tests)."""
    store, tasks = written
    assert [ShardName.parse_marker(task.name.marker_name) for task in tasks] == [task.name for task in tasks]
    assert {marker.name for marker in store.done_markers()} == {task.name for task in tasks}
    for other in ("default-train-00000.json", f".{tasks[0].name.marker_name}.7.tmp", "default-train-1-of-2.json"):
        assert ShardName.parse_marker(other) is None
