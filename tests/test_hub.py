"""Publishing end to end against a loopback fake Hub (tests/fake_hub.py): the real huggingface_hub client code
runs through scripts/push_to_hub.py in a subprocess with HF_ENDPOINT on 127.0.0.1 and Xet disabled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from builder.contract.errors import UsageError
from builder.contract.settings import ModelRecord
from builder.publish.export import rebatch, row_group_rows
from builder.publish.license import resolve_license
from fgbg_depth import CONFIG_NAMES, features
from tests.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_fakeTOKEN_d0n0tLeak_7f3a9c"
REPO = "someone/fgbg-depth"
SMALL_FILES = ["--max-file-size", "1MB", "--row-group-rows", "10"]  # forces several files and row groups
NO_HUB = "http://127.0.0.1:9"  # closed port: a test without a fake hub can never reach the real one


def run(script: str, *args, hub: FakeHub | None = None, token: str | None = TOKEN, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(home), HF_ENDPOINT=hub.endpoint if hub else NO_HUB, HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def push(out: Path, *args, hub: FakeHub | None, home: Path, token: str | None = TOKEN):
    return run("push_to_hub.py", out, REPO, *args, hub=hub, home=home, token=token)


@pytest.fixture(scope="module")
def depth_out(tmp_path_factory, reference_dataset) -> Path:
    """48 samples with depth from a tiny random Depth Anything, in 3 Arrow shards of the default config: a copy
    of the shared run (a push stages its export in the folder's .fgbg/hub; another module's is left out)."""
    out = tmp_path_factory.mktemp("depth") / "out"
    shutil.copytree(reference_dataset, out, ignore=lambda folder, names: ["hub", "hub.json"]
                    if Path(folder) == reference_dataset / ".fgbg" else [])
    return out


@pytest.fixture(scope="module")
def plain_out(tmp_path_factory) -> Path:
    """A different dataset (no depth, other shard count) to republish over the first one."""
    base = tmp_path_factory.mktemp("plain")
    done = run("generate.py", "--demo", "--no-depth", "--placements", 3, "--shard-size", 50,
               "--output-dir", base / "out", home=base / "home")
    assert done.returncode == 0, done.stderr
    return base / "out"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_rows(expected: Path, actual: Path, config: str, with_depth: bool) -> int:
    """load_dataset(streaming=True) on both folders yields equal rows, images decoded pixel for pixel."""
    want = datasets.load_dataset(str(expected), config, split="train", streaming=True)
    got = datasets.load_dataset(str(actual), config, split="train", streaming=True)
    assert got.features == features(config, with_depth)
    rows = 0
    for a, b in zip(want, got, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, Image.Image):
                assert isinstance(b[key], Image.Image) and b[key].mode == value.mode, key
                np.testing.assert_array_equal(np.asarray(b[key]), np.asarray(value), err_msg=key)
            else:
                assert b[key] == value, key
        if config == "default" and with_depth:
            depth = np.asarray(b["depth"])
            assert b["depth"].mode == "I;16" and depth.dtype == np.uint16 and depth.max() == 65535
        rows += 1
    return rows


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_export_only_writes_the_hub_folder(depth_out, tmp_path):
    export = tmp_path / "export"
    done = push(depth_out, "--export-only", export, "--license", "apache-2.0", *SMALL_FILES, hub=None,
                home=tmp_path / "home", token=None)
    assert done.returncode == 0, done.stderr
    assert "parquet" in done.stderr  # conversion progress
    assert sorted(p.name for p in export.iterdir()) == ["README.md", "checksums.json", "data", "images", "manifest.json", "stats.json"]
    stats = json.loads((depth_out / "stats.json").read_text())
    checked = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify.py"), str(export)], capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # the export verifies on its own

    header = card_header(export)
    assert [c["config_name"] for c in header["configs"]] == list(CONFIG_NAMES)
    assert header["license"] == "apache-2.0" and header["pretty_name"] == "fgbg-depth"
    assert header["task_categories"] == ["depth-estimation", "image-segmentation"]
    assert header["size_categories"] == ["n<1K"] and "fgbg-depth" in header["tags"]
    for config, info in zip(header["configs"], header["dataset_info"], strict=True):
        name = config["config_name"]
        files = sorted((export / "data" / name).glob("*.parquet"))
        assert config["data_files"] == [{"split": "train", "path": f"data/{name}/train-*.parquet"}]
        assert [f.name for f in files] == [f"train-{i:05d}-of-{len(files):05d}.parquet" for i in range(len(files))]
        assert info["splits"] == [{"name": "train", "num_bytes": stats["num_bytes"][name],
                                   "num_examples": stats["rows"][name]}]
        assert info["download_size"] == sum(f.stat().st_size for f in files)
        assert info["dataset_size"] == stats["num_bytes"][name]
        groups = []
        for file in files:
            parquet = pq.ParquetFile(file)
            meta = parquet.metadata
            groups += [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            assert all(meta.row_group(i).column(j).has_offset_index  # page index on
                       for i in range(meta.num_row_groups) for j in range(meta.num_columns))
            assert datasets.Features.from_arrow_schema(parquet.schema_arrow) == features(name, True)
            assert file.stat().st_size < 1_000_000 + 10 * 120_000  # the cap plus at most one row group
        assert sum(groups) == stats["rows"][name]
        assert all(g == 10 for g in groups[:-1]) and 0 < groups[-1] <= 10
        if name == "default":
            assert len(files) >= 2  # 48 rows of ~50 KB with a 1 MB cap
    for kind in ("fg_bg", "mask", "depth", "bg", "fg"):  # grids travel with the card and render in it
        assert (export / "images" / f"{kind}.png").is_file()
        assert f"](images/{kind}.png)" in (export / "README.md").read_text()

    for name in CONFIG_NAMES:
        assert assert_same_rows(depth_out, export, name, with_depth=True) == stats["rows"][name]


def test_push_resumes_after_an_interrupted_upload(depth_out, tmp_path):
    home = tmp_path / "home"
    export = tmp_path / "export"
    assert push(depth_out, "--export-only", export, "--license", "apache-2.0", *SMALL_FILES, hub=None, home=home,
                token=None).returncode == 0
    with FakeHub(TOKEN, fail_puts=(3,)) as hub:
        first = push(depth_out, "--license", "apache-2.0", *SMALL_FILES, hub=hub, home=home)
        assert first.returncode == 1, first.stderr
        assert "rerun the same command" in first.stderr
        assert hub.commits == [] and hub.accepted_puts  # interrupted before the commit, some files were sent
        sent_before = list(hub.accepted_puts)

        second = push(depth_out, "--license", "apache-2.0", *SMALL_FILES, hub=hub, home=home)
        assert second.returncode == 0, second.stderr
        assert "reusing the Parquet export" in second.stderr and "published:" in second.stderr

        # the real client ran every step against the server
        for method, route in [("POST", "^/api/repos/create$"), ("POST", "^/api/validate-yaml$"),
                              ("POST", "/preupload/main$"), ("POST", r"\.git/info/lfs/objects/batch$"),
                              ("PUT", "^/lfs-storage/"), ("POST", "/commit/main$")]:
            assert hub.called(method, route), (method, route)
        # no file was uploaded twice: the second run sent only what the first had not stored
        assert len(hub.accepted_puts) == len(set(hub.accepted_puts))
        assert not set(hub.accepted_puts[len(sent_before):]) & set(sent_before)
        assert len(hub.commits) == 1
        received = hub.files(REPO)
        assert received == tree(export)  # exactly the --export-only folder
        assert received == tree(depth_out / ".fgbg" / "hub")
        local = hub.materialize(REPO, tmp_path / "received")

        for name in CONFIG_NAMES:
            assert assert_same_rows(depth_out, local, name, with_depth=True) > 0

        secret = TOKEN.encode()
        assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr
        assert not any(secret in data for data in received.values())
        assert not any(secret in body for body in hub.raw_bodies)
        assert not any(secret in p.read_bytes() for p in (depth_out / ".fgbg").rglob("*") if p.is_file())


def test_republish_replaces_old_data_and_pushes_to_a_branch(depth_out, plain_out, tmp_path):
    home = tmp_path / "home"
    with FakeHub(TOKEN) as hub:
        assert push(depth_out, "--license", "apache-2.0", "--private", *SMALL_FILES, hub=hub, home=home).returncode == 0
        assert "images/depth.png" in hub.files(REPO) and hub.repos[REPO]["private"]
        again = push(plain_out, "--license", "cc-by-4.0", hub=hub, home=home)
        assert again.returncode == 0, again.stderr
        received = hub.files(REPO)
        assert received == tree(plain_out / ".fgbg" / "hub")  # no stale shard or grid survives
        assert hub.commits[-1]["deleted"] and "images/depth.png" not in received
        assert card_header(hub.materialize(REPO, tmp_path / "plain"))["license"] == "cc-by-4.0"
        assert assert_same_rows(plain_out, tmp_path / "plain", "default", with_depth=False) == 72

        branch = push(depth_out, "--license", "apache-2.0", "--revision", "depth", *SMALL_FILES, hub=hub, home=home)
        assert branch.returncode == 0, branch.stderr
        assert hub.files(REPO, "depth") == tree(depth_out / ".fgbg" / "hub")
        assert hub.files(REPO) == received  # main untouched


def test_clear_errors(depth_out, plain_out, tmp_path):
    home = tmp_path / "home"

    done = push(plain_out, "--license", "cc-by-4.0", hub=None, home=home, token=None)
    assert done.returncode == 2 and "no Hugging Face token" in done.stderr

    done = run("push_to_hub.py", plain_out, "not a/repo//id", "--license", "cc-by-4.0", hub=None, home=home)
    assert done.returncode == 2 and "malformed" in done.stderr

    done = push(plain_out, hub=None, home=home)  # --no-depth: the license is the user's call
    assert done.returncode == 2 and "--license" in done.stderr

    done = push(depth_out, "--license", "apache-2.0", hub=None, home=home)  # network errors: a message, no traceback
    assert done.returncode == 1 and "cannot reach" in done.stderr and "Traceback" not in done.stderr

    broken = tmp_path / "broken"
    shutil.copytree(plain_out, broken)
    (broken / "stats.json").unlink()
    next((broken / "data" / "default").glob("train-00001-*.arrow")).unlink()
    with FakeHub(TOKEN) as hub:
        done = push(broken, "--license", "cc-by-4.0", hub=hub, home=home)
        assert done.returncode == 2, done.stderr
        assert "stats.json" in done.stderr and "data/default/train-00001-of-00002.arrow" in done.stderr
        assert hub.requests == []  # refused before anything was sent

    with FakeHub("hf_the_real_one") as hub:
        done = push(plain_out, "--license", "cc-by-4.0", "--token", TOKEN, hub=hub, home=home, token=None)
        assert done.returncode == 2, done.stderr
        assert "no write access" in done.stderr and "401" in done.stderr
        assert TOKEN not in done.stdout + done.stderr and not hub.repos


def test_license_follows_the_depth_model():
    def model(model_id):
        return ModelRecord(model_id, "main", "float32")

    small, large = model("depth-anything/Depth-Anything-V2-Small-hf"), model("depth-anything/Depth-Anything-V2-Large-hf")
    assert resolve_license(small, None) == "apache-2.0"
    assert resolve_license(large, None) == "cc-by-nc-4.0"
    assert resolve_license(large, "cc-by-nc-4.0") == "cc-by-nc-4.0"
    assert resolve_license(model("/models/mine"), "mit") == "mit"
    for record, given in [(large, "apache-2.0"), (None, None), (model("x/y"), None), (small, "Apache 2.0")]:
        with pytest.raises(UsageError, match="--license"):
            resolve_license(record, given)


def test_row_groups_are_about_100_rows_and_bounded_in_bytes():
    assert row_group_rows(400_000, 400_000 * 100_000) == 100  # 100 KB rows: 100 rows, 10 MB groups
    assert row_group_rows(1_000, 1_000 * 5_000_000) == 20  # 5 MB rows: 20 rows keep a group near 100 MB
    assert row_group_rows(10, 10 * 10**9) == 1
    batches = [pa.record_batch({"a": list(range(i, i + 32))}) for i in range(0, 96, 32)]
    assert [t.num_rows for t in rebatch(batches, 25)] == [25, 25, 25, 21]
    assert pa.concat_tables(rebatch(batches, 25)).column("a").to_pylist() == list(range(96))
