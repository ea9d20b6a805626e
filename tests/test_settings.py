"""The typed settings and manifest: validated once, every problem at once, and a JSON round trip."""

import json

import pytest

from builder.contract.errors import UsageError
from builder.contract.settings import (MANIFEST_FORMAT, ContentSettings, GenerateConfig, InputRecord, Manifest,
                                       ModelRecord)


def manifest(**settings) -> Manifest:
    return Manifest(ContentSettings(**settings), (InputRecord("a.jpg", "0" * 64, 10),),
                    (InputRecord("b.png", "1" * 64, 20),), ModelRecord("m", "local", "float32"), {"numpy": "2"})


def test_every_problem_of_both_parts_at_once():
    with pytest.raises(UsageError) as caught:
        GenerateConfig.from_kwargs(placements=0, batch_size=0, bg_dir="bg")
    text = "\n".join(caught.value.problems)
    assert "--placements 0" in text and "--batch-size 0" in text and "give both --bg-dir and --fg-dir" in text


def test_flags_reach_the_right_part():
    config = GenerateConfig.from_args(["--demo", "--output-dir", "out", "--seed", "3", "--batch-size", "4",
                                       "--no-depth"])
    assert config.content.seed == 3 and config.content.no_depth and config.run.batch_size == 4
    assert str(config.run.output_dir) == "out" and config.run.demo


def test_manifest_json_round_trip_and_depth_keys():
    with_depth = manifest(seed=5)
    assert Manifest.from_json(json.loads(json.dumps(with_depth.to_json()))) == with_depth
    assert with_depth.to_json()["format"] == MANIFEST_FORMAT
    assert "depth_model" in with_depth.to_json()["settings"]
    assert "depth_model" not in manifest(no_depth=True).to_json()["settings"]


def test_manifest_differences_ignore_library_versions():
    a, b = manifest(seed=1), manifest(seed=2)
    assert a.differences(b) == ["settings"]
    newer = Manifest(a.settings, a.backgrounds, a.foregrounds, a.model, {"numpy": "3"})
    assert a.differences(newer) == []


def test_a_manifest_of_another_format_is_refused():
    data = manifest().to_json()
    data["format"] = MANIFEST_FORMAT + 1
    with pytest.raises(UsageError, match="manifest format"):
        Manifest.from_json(data)
