import numpy as np
import pytest

from builder.contract.plan import SampleSpace, draw_placement, placed_size, shard_tasks, tasks_for_process


def test_index_and_decompose_are_inverse_and_background_major():
    space = SampleSpace(n_bg=3, n_fg=4, placements=5)
    assert len(space) == 3 * 4 * 2 * 5
    seen = [space.decompose(i) for i in range(len(space))]
    assert [space.index(*t) for t in seen] == list(range(len(space)))
    assert seen[0] == (0, 0, 0, 0) and seen[5] == (0, 0, 1, 0) and seen[10] == (0, 1, 0, 0)
    assert seen[40] == (1, 0, 0, 0)
    with pytest.raises(IndexError):
        space.decompose(len(space))


def test_classic_recipe_size():
    space = SampleSpace(100, 100, 20)
    assert len(space) == 400_000
    from builder.contract.plan import SplitPlan
    from builder.rows.configs import CONFIGS

    assert [config.count_rows(SplitPlan(space), "train") for config in CONFIGS] == [400_000, 100, 100]


@pytest.mark.parametrize("fg_shape", [(10, 300), (300, 10), (50, 50), (1, 1)])
def test_placements_fit_and_follow_scale(fg_shape):
    resolution = 64
    for index in range(300):
        p = draw_placement(7, index, *fg_shape, resolution, 0.3, 1.0)
        assert 0.3 <= p.scale <= 1.0
        assert p.scale == float(np.float32(p.scale))
        assert max(p.width, p.height) == max(1, round(p.scale * resolution))
        assert 0 <= p.x <= resolution - p.width and 0 <= p.y <= resolution - p.height


def test_placement_depends_on_seed_and_index_only():
    a = [draw_placement(0, i, 40, 60, 224, 0.3, 0.6) for i in range(50)]
    b = [draw_placement(0, i, 40, 60, 224, 0.3, 0.6) for i in reversed(range(50))][::-1]
    assert a == b
    assert a != [draw_placement(1, i, 40, 60, 224, 0.3, 0.6) for i in range(50)]


def test_placed_size_keeps_aspect():
    assert placed_size(0.5, 100, 200, 224) == (56, 112)
    assert placed_size(0.5, 200, 100, 224) == (112, 56)


def test_shards_cover_the_space_and_split_round_robin():
    tasks = shard_tasks("default", 10, 4)
    assert [(t.start, t.stop) for t in tasks] == [(0, 4), (4, 8), (8, 10)]
    assert all(t.name.count == 3 for t in tasks)
    parts = [[t.name.index for t in tasks_for_process(tasks, r, 2)] for r in range(2)]
    assert parts == [[0, 2], [1]]
    seven = shard_tasks("default", 7, 1)
    assert [[t.name.index for t in tasks_for_process(seven, r, 3)] for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [t.name.index for t in tasks_for_process(tasks, 0, 1)] == [0, 1, 2]
    assert tasks_for_process(tasks, 3, 4) == []  # more processes than shards: the extra ones idle
    assert shard_tasks("default", 0, 4) == []


def test_shard_names_round_trip_and_carry_the_split():
    from builder.contract.plan import ShardName

    name = ShardName("default", "validation", 3, 12)
    assert name.relative_path() == "data/default/validation-00003-of-00012.arrow"
    assert ShardName.parse("default", name.file_name("parquet")) == name
    assert ShardName.parse("default", "train-3-of-12.arrow") is None
    assert name.marker_name == "default-validation-00003-of-00012.json"
    assert ShardName.data_files("default", "train", "parquet") == "data/default/train-*.parquet"
    assert [t.name.split for t in shard_tasks("default", 5, 2, split="validation")] == ["validation"] * 3
