"""builder.train.loader: the PyTorch loader, on small generated datasets and their Parquet export."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from builder.train.loader import assign_units, channel_stats, torch_dataset
from tests.conftest import ROOT, env, read_config, run_generate
from tests.fake_hub import FakeHub

PUSH = ROOT / "scripts" / "push_to_hub.py"


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory):
    """48 rows, no depth, all in one Arrow shard of six 8-row record batches."""
    out = tmp_path_factory.mktemp("one_shard") / "out"
    run_generate(out, "--demo", "--placements", "2", "--no-depth", "--shard-size", "48", "--batch-size", "8")
    assert len(list((out / "data" / "default").glob("*.arrow"))) == 1
    return out


@pytest.fixture(scope="module")
def export(reference_dataset, tmp_path_factory):
    """The reference dataset as the Hub would serve it, with 10-row row groups so files split further."""
    folder = tmp_path_factory.mktemp("export") / "hub"
    subprocess.run([sys.executable, str(PUSH), str(reference_dataset), "user/x", "--export-only", str(folder),
                    "--license", "cc-by-4.0", "--row-group-rows", "10"], check=True, env=env(), capture_output=True)
    return folder


def decode(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])), dtype=np.float64)


def normalised(cell: dict, stats: dict, kind: str) -> np.ndarray:
    mean, std = np.array(stats["kinds"][kind]["mean"]), np.array(stats["kinds"][kind]["std"])
    return ((decode(cell) / 255 - mean) / std).transpose(2, 0, 1)


def ids_seen(path, rank: int, world_size: int, epoch: int = 0, shuffle: bool = True, workers: int = 2) -> list[int]:
    dataset = torch_dataset(path, shuffle=shuffle, seed=3, columns=["sample_id"], rank=rank, world_size=world_size)
    dataset.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, num_workers=workers)
    return [int(i) for batch in loader for i in batch["sample_id"]]


@pytest.mark.parametrize("depth", ["unit", "raw"])
def test_values_equal_a_hand_decode(reference_dataset, depth):
    stats = json.loads((reference_dataset / "stats.json").read_text())
    table = read_config(reference_dataset, "default").to_pylist()
    rows = {row["sample_id"]: row for row in table}
    backgrounds = {row["bg_id"]: row["image"] for row in read_config(reference_dataset, "backgrounds").to_pylist()}
    seen = 0
    for got in torch_dataset(reference_dataset, depth=depth):
        want = rows[got["sample_id"]]
        assert (got["bg_id"], got["fg_id"]) == (want["bg_id"], want["fg_id"])
        assert got["fg_bg"].dtype == torch.float32 and got["fg_bg"].shape == (3, 224, 224)
        np.testing.assert_allclose(got["fg_bg"], normalised(want["fg_bg"], stats, "fg_bg"), atol=1e-5)
        np.testing.assert_allclose(got["bg"], normalised(backgrounds[want["bg_id"]], stats, "bg"), atol=1e-5)
        np.testing.assert_array_equal(got["mask"][0], decode(want["mask"]) / 255)
        assert set(np.unique(got["mask"])) <= {0.0, 1.0}
        png = decode(want["depth"])
        low, high = want["depth_min"], want["depth_max"]
        expected = png / 65535 if depth == "unit" else low + png / 65535 * (high - low)
        assert got["depth"].shape == (1, 224, 224)
        np.testing.assert_allclose(got["depth"][0], expected, rtol=1e-6, atol=1e-6 * abs(high))
        seen += 1
    assert seen == len(rows)


def test_no_depth_dataset_has_no_depth_and_refuses_to_give_it(one_shard):
    row = next(iter(torch_dataset(one_shard)))
    assert "depth" not in row and {"bg", "fg_bg", "mask", "sample_id"} <= set(row)
    with pytest.raises(ValueError, match="--no-depth"):
        torch_dataset(one_shard, columns=["fg_bg", "depth"])


@pytest.mark.parametrize("dataset", ["reference_dataset", "one_shard"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_two_workers_on_two_ranks_see_every_row_once(request, dataset, shuffle):
    path = request.getfixturevalue(dataset)
    rows = torch_dataset(path).num_rows
    for epoch in (0, 1):
        seen = [ids_seen(path, rank, 2, epoch, shuffle) for rank in (0, 1)]
        assert all(seen), "a rank got nothing"
        assert sorted(seen[0] + seen[1]) == list(range(rows))


def test_one_shard_dataset_keeps_every_worker_busy(one_shard):
    units = len(torch_dataset(one_shard).units)
    assert units == 6  # one per record batch, not one per file
    for epoch in (0, 1):
        slots = [assign_units(units, rank, 2, worker, 2, 0, epoch, True) for rank in (0, 1) for worker in (0, 1)]
        assert sorted(sum(slots, [])) == list(range(units))
        assert {len(slot) for slot in slots} == {1, 2}


@pytest.mark.parametrize("units,world_size,workers", [(1, 1, 1), (7, 2, 2), (6, 3, 4), (100, 4, 3)])
def test_assign_units_deals_each_unit_once_and_evenly(units, world_size, workers):
    for epoch in (0, 5):
        slots = [assign_units(units, rank, world_size, worker, workers, 7, epoch, True)
                 for rank in range(world_size) for worker in range(workers)]
        assert sorted(sum(slots, [])) == list(range(units))
        assert max(map(len, slots)) - min(map(len, slots)) <= 1
        per_rank = [sum(len(slots[rank * workers + worker]) for worker in range(workers)) for rank in range(world_size)]
        assert max(per_rank) - min(per_rank) <= 1


def test_assign_units_order_is_seeded_per_epoch():
    def order(seed, epoch):
        return assign_units(100, 0, 1, 0, 1, seed, epoch, True)

    assert order(7, 0) == order(7, 0) != order(7, 1)
    assert order(7, 0) != order(8, 0)
    assert assign_units(100, 0, 1, 0, 1, 7, 1, False) == list(range(100))


def test_rank_comes_from_the_environment(reference_dataset, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    dataset = torch_dataset(reference_dataset, columns=["sample_id"])
    assert (dataset.rank, dataset.world_size) == (1, 2)
    with pytest.raises(ValueError, match="rank 2 of 2"):
        list(torch_dataset(reference_dataset, columns=["sample_id"], rank=2, world_size=2))


def test_epochs_reshuffle_and_the_same_epoch_repeats(reference_dataset):
    first = ids_seen(reference_dataset, 0, 1, epoch=0)
    assert sorted(first) == list(range(48)) and first != sorted(first)
    assert ids_seen(reference_dataset, 0, 1, epoch=1) != first
    assert ids_seen(reference_dataset, 0, 1, epoch=0) == first


def test_export_folder_gives_the_same_rows(reference_dataset, export):
    from_arrow = {row["sample_id"]: row for row in torch_dataset(reference_dataset, depth="raw")}
    dataset = torch_dataset(export, depth="raw", shuffle=True)
    assert dataset.files.fmt == "parquet" and len(dataset.units) > len(dataset.files.paths)
    seen = 0
    for row in dataset:
        want = from_arrow[row["sample_id"]]
        assert row.keys() == want.keys()
        for name, value in row.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(want[name])), name
        seen += 1
    assert seen == len(from_arrow)
    assert sorted(ids_seen(export, 0, 2) + ids_seen(export, 1, 2)) == list(range(48))


HUB_READER = """
import sys, torch
from builder.train.loader import torch_dataset
dataset = torch_dataset("user/x", depth="raw", shuffle=True)
loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
torch.save({"units": len(dataset.units), "files": len(dataset.files.paths), "rows": list(loader)}, sys.argv[1])
"""


def test_hub_repo_streams_the_same_rows(reference_dataset, tmp_path):
    """Published to the loopback fake Hub, read back through HfFileSystem in a fresh process (huggingface_hub
    reads HF_ENDPOINT when imported), with 2 workers: every row once, equal to the local Arrow folder's."""
    token = "hf_fake_training_token"
    with FakeHub(token) as hub:
        hub_env = {k: v for k, v in env().items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_OFFLINE"))}
        hub_env.update(HF_HOME=str(tmp_path / "home"), HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1",
                       HF_TOKEN=token, PYTHONPATH=str(ROOT))
        for command in ([str(PUSH), str(reference_dataset), "user/x", "--license", "cc-by-4.0",
                         "--row-group-rows", "10"],
                        ["-c", HUB_READER, str(tmp_path / "rows.pt")]):
            done = subprocess.run([sys.executable, *command], env=hub_env, capture_output=True, text=True,
                                  timeout=300, cwd=ROOT)
            assert done.returncode == 0, done.stderr[-3000:]
        assert hub.called("GET", r"/datasets/user/x/resolve/main/data/default/") > 0
    got = torch.load(tmp_path / "rows.pt")
    assert got["units"] > got["files"]  # row groups, not files
    local = {row["sample_id"]: row for row in torch_dataset(reference_dataset, depth="raw")}
    assert sorted(row["sample_id"] for row in got["rows"]) == sorted(local)
    for row in got["rows"]:
        want = local[row["sample_id"]]
        assert row.keys() == want.keys()
        assert all(torch.equal(torch.as_tensor(row[k]), torch.as_tensor(want[k])) for k in row), row["sample_id"]


def test_train_stats_prefer_the_per_split_table():
    whole = {"kinds": {"bg": {"mean": [0.5] * 3, "std": [0.2] * 3}}}
    per_split = {**whole, "splits": {"train": {"kinds": {"bg": {"mean": [0.4] * 3, "std": [0.1] * 3}}}}}
    assert channel_stats(whole, "bg") == ([0.5] * 3, [0.2] * 3)
    assert channel_stats(per_split, "bg") == ([0.4] * 3, [0.1] * 3)


def test_a_folder_that_is_not_a_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "data" / "default")):
        torch_dataset(tmp_path)
    with pytest.raises(ValueError, match="depth='metres'"):
        torch_dataset(tmp_path, depth="metres")


def test_validation_rows_are_normalised_with_the_train_statistics(tmp_path):
    """What a network trained on train sees at evaluation: validation pixels through train's mean and std (read
    here straight from stats.json's per-split table), not through the validation split's own."""
    out = tmp_path / "out"
    run_generate(out, "--demo", "--placements", "2", "--no-depth", "--resolution", "64",
                 "--validation-backgrounds", "1")
    splits = json.loads((out / "stats.json").read_text())["splits"]
    train, validation = ({"kinds": splits[name]["kinds"]} for name in ("train", "validation"))
    assert train["kinds"]["fg_bg"]["mean"] != validation["kinds"]["fg_bg"]["mean"]
    rows = {row["sample_id"]: row for row in read_config(out, "default").to_pylist()}
    backgrounds = {row["bg_id"]: row["image"] for row in read_config(out, "backgrounds").to_pylist()}
    seen = 0
    for got in torch_dataset(out, "validation"):
        want = rows[got["sample_id"]]
        np.testing.assert_allclose(got["fg_bg"], normalised(want["fg_bg"], train, "fg_bg"), atol=1e-5)
        np.testing.assert_allclose(got["bg"], normalised(backgrounds[want["bg_id"]], train, "bg"), atol=1e-5)
        seen += 1
    assert seen == splits["validation"]["rows"]["default"] > 0
