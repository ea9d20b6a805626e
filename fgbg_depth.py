"""fgbg-depth: the dataset's definition and public Python API.

This module is the single source of truth for the schema: every other part of the project imports
`CONFIG_NAMES` and `features()` from here. It also offers

* `FgBgDepth`, a `datasets.GeneratorBasedBuilder` for a single-process local build from Python, and
* `load_with_background()`, which returns the `default` rows with their background image joined in,
  because the network consumes `fg_bg` and `bg` together.

The large, multi-process build is `accelerate launch scripts/generate.py` (see README.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import datasets

CONFIG_NAMES = ("default", "backgrounds", "foregrounds")
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
KEY_COLUMNS = {"default": "sample_id", "backgrounds": "bg_id", "foregrounds": "fg_id"}  # each config's row id


def features(config_name: str, with_depth: bool = True) -> datasets.Features:
    """Features of one config; `with_depth=False` is the `--no-depth` layout."""
    image, int32, float32 = datasets.Image(), datasets.Value("int32"), datasets.Value("float32")
    depth = {"depth": image, "depth_min": float32, "depth_max": float32} if with_depth else {}
    if config_name == "default":
        columns = {
            "fg_bg": image,
            "mask": image,
            **depth,
            "sample_id": datasets.Value("int64"),
            "bg_id": int32,
            "fg_id": int32,
            "flip": datasets.Value("bool"),
            "x": int32,
            "y": int32,
            "scale": float32,
            "bbox": datasets.List(int32, length=4),
        }
    elif config_name == "backgrounds":
        columns = {"bg_id": int32, "image": image, **depth, "source": datasets.Value("string")}
    elif config_name == "foregrounds":
        columns = {"fg_id": int32, "image": image, "mask": image, "source": datasets.Value("string")}
    else:
        raise ValueError(f"unknown config {config_name!r}; expected one of {CONFIG_NAMES}")
    return datasets.Features(columns)


def load_with_background(path: str, split: str = "train", streaming: bool = False, **load_kwargs: Any):
    """`default` rows of a generated dataset (local folder or Hub repo) with a `bg` image column added.

    The backgrounds config is small (one row per background), so it is read once into memory and
    joined onto each sample by `bg_id` as it is read: nothing is copied per row on disk.
    """
    backgrounds = datasets.load_dataset(path, "backgrounds", split=split, **load_kwargs)
    backgrounds = backgrounds.cast_column("image", datasets.Image(decode=False))
    bg_cells = {row["bg_id"]: row["image"] for row in backgrounds.select_columns(["bg_id", "image"])}
    samples = datasets.load_dataset(path, "default", split=split, streaming=streaming, **load_kwargs)
    image = datasets.Image()

    def add_background(batch: dict) -> dict:
        return {**batch, "bg": [image.decode_example(bg_cells[i]) for i in batch["bg_id"]]}

    if streaming:
        joined = datasets.Features({**samples.features, "bg": image})
        return samples.map(add_background, batched=True, batch_size=64, features=joined)
    return samples.with_transform(add_background)


@dataclasses.dataclass
class FgBgDepthConfig(datasets.BuilderConfig):
    """Builder config: the generation settings of `builder.config.GenerateConfig` as keyword arguments."""

    generate_kwargs: dict = dataclasses.field(default_factory=dict)


class FgBgDepth(datasets.GeneratorBasedBuilder):
    """Single-process local build, e.g.

        b = FgBgDepth(config_name="default", generate_kwargs={"bg_dir": "bgs", "fg_dir": "fgs"})
        b.download_and_prepare(); ds = b.as_dataset(split="train")
    """

    BUILDER_CONFIG_CLASS = FgBgDepthConfig
    BUILDER_CONFIGS = [FgBgDepthConfig(name=name) for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "default"

    def _generate_config(self):
        from builder.config import GenerateConfig

        return GenerateConfig(output_dir=None, **self.config.generate_kwargs)

    def _info(self):
        return datasets.DatasetInfo(features=features(self.config.name, self._generate_config().with_depth))

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN)]

    def _generate_examples(self):
        from builder.pipeline import iter_rows

        for row in iter_rows(self._generate_config(), self.config.name):
            yield row[KEY_COLUMNS[self.config.name]], row

