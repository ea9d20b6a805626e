"""The seam between process plumbing and the work: `run_shards(job, store, rank, world_size)` knows nothing of
launchers, so several ranks can run in one process and give the same dataset as one process."""

import pytest

from builder.contract.settings import GenerateConfig
from builder.publish import card
from builder.run.pipeline import load_job, run_shards
from builder.store.output import OutputStore
from tests.conftest import run_generate

SETTINGS = {"demo": True, "no_depth": True, "placements": 2, "shard_size": 10, "resolution": 64}


def files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted([*(out / "data").rglob("*.arrow"), out / "stats.json", *(out / "images").glob("*.png")])}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The same settings run by the generator as a user runs it, once for both world sizes."""
    out = tmp_path_factory.mktemp("one") / "out"
    run_generate(out, "--demo", "--no-depth", "--placements", 2, "--shard-size", 10, "--resolution", 64)
    return out


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_driven_in_one_process_equal_a_one_process_run(tmp_path, world_size, one_process):
    config = GenerateConfig.from_kwargs(output_dir=tmp_path / "ranks", **SETTINGS)
    job = load_job(config, device=None)
    store = OutputStore(config.run.output_dir)
    store.prepare(job.manifest(), overwrite=False)
    written = []
    for rank in reversed(range(world_size)):  # any order: a shard's content depends on its index alone
        tasks = run_shards(job, store, rank, world_size, on_shard=lambda: written.append(rank))
        assert not all(store.is_done(t) for t in tasks) or rank == 0
    store.wait_for_all(tasks)
    card.finish(store, tasks, elapsed=1.0, resumed_rows=0, processes=world_size, device="cpu")
    assert len(written) == len(tasks)
    assert files(config.run.output_dir) == files(one_process)


def test_a_non_finite_prediction_names_its_sample_and_writes_nothing(tmp_path):
    """A NaN map is an error naming the sample, never a shard."""
    import torch

    from builder.contract.errors import FgbgError
    from builder.rows.assets import load_inputs
    from builder.rows.render import RenderContext
    from builder.run.depth import scale_to_uint16
    from builder.run.pipeline import Job

    class NaNAtSecondRow:
        revision, dtype, device, field_of_view = "fake", torch.float32, torch.device("cpu"), False

        def predict(self, images):
            raw = torch.zeros(len(images), images.shape[1], images.shape[2])
            raw[:, 0, 0] = 1.0
            raw[1, 3, 3] = float("nan")
            return scale_to_uint16(raw)

    config = GenerateConfig.from_kwargs(output_dir=tmp_path / "out", **{**SETTINGS, "no_depth": False})
    job = Job(RenderContext(config.content, load_inputs(config.content, config.run)), NaNAtSecondRow(), 4)
    store = OutputStore(config.run.output_dir)
    store.prepare(job.manifest(), overwrite=False)
    with pytest.raises(FgbgError, match=r"config default, sample_id \[1\]: non-finite depth"):
        run_shards(job, store, 0, 1)
    assert not list((tmp_path / "out" / "data").rglob("*.arrow"))
