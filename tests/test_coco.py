"""builder.publish.coco and scripts/export_coco.py: RLE as the reference reader decodes it, a dataset with several
objects per composite round-tripped through pycocotools, and the same export read from a Hub repo id (the loopback
fake Hub of tests/fake_hub.py)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_api
from pycocotools.coco import COCO

from builder.publish.coco import rle
from tests.conftest import ROOT, env, read_config
from tests.fake_hub import FakeHub
from tests.test_hub import REPO, TOKEN, tree
from tests.test_hub import run as hub_run

EXPORT = ROOT / "scripts" / "export_coco.py"


def test_rle_decodes_to_the_mask():
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (16, 16), (3, 1)):
        for mask in (rng.random(shape) > 0.5, np.ones(shape, bool), np.zeros(shape, bool)):
            coded = mask_api.frPyObjects(rle(mask), *shape)
            assert np.array_equal(mask_api.decode(coded).astype(bool), mask)


def export(source, folder: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXPORT), str(source), str(folder)], capture_output=True, text=True,
                          **{"env": env(), **kwargs})


def test_export_round_trips_through_pycocotools(scenes_reference, tmp_path):
    out, coco = scenes_reference, tmp_path / "coco"
    done = export(out, coco)
    assert done.returncode == 0, done.stderr[-3000:]
    sources = {r["fg_id"]: r["source"] for r in read_config(out, "foregrounds").to_pylist()}
    rows = {r["sample_id"]: r for r in read_config(out, "default").to_pylist()}
    seen = set()
    for split in ("train", "validation"):
        reader = COCO(str(coco / "annotations" / f"instances_{split}.json"))
        assert {c["name"] for c in reader.loadCats(reader.getCatIds())} == set(sources.values())
        for image_id, image in reader.imgs.items():
            row, seen = rows[image_id], seen | {image_id}
            assert (coco / image["file_name"]).read_bytes() == row["fg_bg"]["bytes"]
            instances = np.asarray(Image.open(io.BytesIO(row["instance_mask"]["bytes"])))
            annotations = reader.loadAnns(reader.getAnnIds(imgIds=[image_id]))
            assert len(annotations) == len(row["objects"])
            for k, (obj, annotation) in enumerate(zip(row["objects"], annotations), start=1):
                assert np.array_equal(reader.annToMask(annotation).astype(bool), instances == k)
                x0, y0, x1, y1 = obj["bbox"]
                assert annotation["bbox"] == [x0, y0, x1 - x0, y1 - y0] and annotation["iscrowd"] == 0
                assert annotation["area"] == int((instances == k).sum())
                assert reader.cats[annotation["category_id"]]["name"] == sources[obj["fg_id"]]
    assert seen == set(rows)


def test_export_from_a_hub_repo_id_equals_the_folders(scenes_reference, tmp_path):
    """Pushed to the fake Hub and exported by repo id (datasets streams it over HTTP): the same files, byte for byte,
    as the export of the folder."""
    home, scenes_out = tmp_path / "home", tmp_path / "out"
    shutil.copytree(scenes_reference, scenes_out)  # the push stages its export inside the folder
    with FakeHub(TOKEN) as hub:
        pushed = hub_run("push_to_hub.py", scenes_out, REPO, "--license", "apache-2.0", hub=hub, home=home)
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        done = hub_run("export_coco.py", REPO, tmp_path / "from_hub", hub=hub, home=home)
        assert done.returncode == 0, done.stderr[-3000:]
        assert hub.called("GET", r"/datasets/someone/fgbg-depth/resolve/.+\.parquet$")
    assert export(scenes_out, tmp_path / "from_folder").returncode == 0
    assert tree(tmp_path / "from_hub") == tree(tmp_path / "from_folder") != {}


def test_not_a_dataset_exits_2(tmp_path):
    done = subprocess.run([sys.executable, str(EXPORT), str(tmp_path / "nothing"), str(tmp_path / "coco")],
                          capture_output=True, text=True, env=env())
    assert done.returncode == 2 and "not an fgbg-depth dataset" in done.stderr
