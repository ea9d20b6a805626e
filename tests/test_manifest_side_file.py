"""builder.store.manifest: a dataset of many inputs keeps their records in inputs.json beside manifest.json,
which names it with its sha256; written and read back by the store, copied by the export, read by verify; a
changed input is still refused on resume, and a changed or missing side file is refused by name."""

from __future__ import annotations

import gc
import json

import pytest
from PIL import Image

from builder.contract.errors import UsageError
from builder.contract.settings import GenerateConfig, Manifest
from builder.publish import card
from builder.publish.export import ExportOptions, export
from builder.run.launch import generate
from builder.store import manifest as manifest_files
from builder.store.manifest import manifest_documents
from builder.store.names import INPUTS_NAME
from builder.store.output import OutputStore
from builder.verify.runner import verify
from tests.conftest import write_inputs


def run(out, bg_dir, fg_dir):
    """A generation in this process; the folder lock its store holds until the process exits is let go by
    collecting the store (as tests/test_coco_source.py does)."""
    try:
        generate(GenerateConfig.from_kwargs(output_dir=out, bg_dir=bg_dir, fg_dir=fg_dir, no_depth=True,
                                            resolution=64, placements=1, workers=0), card)
    finally:
        gc.collect()


@pytest.fixture
def small_inline(monkeypatch):
    """Side files from 4 records on (the 2 backgrounds and 2 cut-outs of these tests)."""
    monkeypatch.setattr(manifest_files, "INLINE_RECORDS", 3)


def test_records_move_to_the_side_file_past_the_inline_limit_and_read_back_the_same(tmp_path, small_inline):
    bg_dir, fg_dir = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(out, bg_dir, fg_dir)
    data = json.loads((out / "manifest.json").read_text())
    assert set(data["inputs"]) == {"file", "sha256", "backgrounds", "foregrounds"}
    assert (data["inputs"]["file"], data["inputs"]["backgrounds"], data["inputs"]["foregrounds"]) == (INPUTS_NAME, 2, 2)
    side = json.loads((out / INPUTS_NAME).read_text())
    manifest = OutputStore(out).read_manifest()
    assert [r.to_json() for r in manifest.backgrounds] == side["backgrounds"]
    assert manifest_documents(manifest) == (data, (out / INPUTS_NAME).read_bytes())
    inline = Manifest.from_json(manifest.to_json())  # the same manifest as an older version wrote it: all inline
    assert inline == manifest and not inline.differences(manifest)
    assert "names, sha256 and sizes in `inputs.json`" in (out / "README.md").read_text()
    assert verify(out).ok
    exported = export(out, tmp_path / "export", ExportOptions("someone/data", "cc-by-4.0"), progress=False)
    assert (exported.folder / INPUTS_NAME).read_bytes() == (out / INPUTS_NAME).read_bytes()
    assert verify(exported.folder).ok

    Image.open(bg_dir / "bg_00.jpg").save(bg_dir / "bg_00.jpg", quality=70)  # the same name, another file
    with pytest.raises(UsageError, match="made with different inputs"):
        run(out, bg_dir, fg_dir)


def test_inline_up_to_the_limit(tmp_path):
    bg_dir, fg_dir = write_inputs(tmp_path / "in")
    run(tmp_path / "out", bg_dir, fg_dir)
    assert "backgrounds" in json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"]
    assert not (tmp_path / "out" / INPUTS_NAME).exists()


def test_a_changed_or_missing_side_file_is_refused_by_name(tmp_path, small_inline):
    bg_dir, fg_dir = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(out, bg_dir, fg_dir)
    side = (out / INPUTS_NAME).read_bytes()
    (out / INPUTS_NAME).write_bytes(side.replace(b'"bg_00.jpg"', b'"bg_99.jpg"'))
    with pytest.raises(UsageError, match=f"{INPUTS_NAME} differs from the sha256"):
        OutputStore(out).read_manifest()
    (out / INPUTS_NAME).unlink()
    with pytest.raises(UsageError, match=f"{INPUTS_NAME} is missing"):
        verify(out)
