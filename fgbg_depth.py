"""fgbg-depth: the dataset's definition and public Python API.

The schema (configs, features) is defined once, in `builder.contract.schema`, and exposed here. This module also offers

* `FgBgDepth`, a `datasets.GeneratorBasedBuilder` for a single-process local build from Python, and
* `load_with_background()`, which returns the `default` rows with their background image joined in,
  because the network consumes `fg_bg` and `bg` together.

The large, multi-process build is `accelerate launch scripts/generate.py` (see README.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import datasets

from builder.contract.errors import UsageError
from builder.contract.plan import shard_tasks
from builder.contract.schema import CONFIG_NAMES, SCHEMA_BY_NAME, features
from builder.contract.settings import DEFAULT_DEPTH_MODEL, GenerateConfig, column_groups, from_coco, with_categories
from builder.rows.assets import list_foregrounds, load_inputs
from builder.rows.configs import CONFIG_BY_NAME
from builder.rows.render import RenderContext

__all__ = ["CONFIG_NAMES", "DEFAULT_DEPTH_MODEL", "FgBgDepth", "features", "load_with_background", "torch_dataset"]


def __getattr__(name: str):
    """`torch_dataset` (builder.train.loader) is imported on first use: reading a dataset needs no torch."""
    if name == "torch_dataset":
        from builder.train.loader import torch_dataset

        return torch_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy `torch_dataset` is listed like the rest (tab completion, `help`)."""
    return sorted({*globals(), "torch_dataset"})


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
    """Builder config: the generation settings of `builder.contract.settings.GenerateConfig` as keyword arguments."""

    generate_kwargs: dict = dataclasses.field(default_factory=dict)


class FgBgDepth(datasets.GeneratorBasedBuilder):
    """Local build from Python, e.g.

        b = FgBgDepth(config_name="default", generate_kwargs={"bg_dir": "bgs", "fg_dir": "fgs"})
        b.download_and_prepare(num_proc=2); ds = b.as_dataset(split="train")

    Each shard of the generator is one generation task, so `num_proc` spreads them over processes.
    """

    BUILDER_CONFIG_CLASS = FgBgDepthConfig
    BUILDER_CONFIGS = [FgBgDepthConfig(name=name) for name in CONFIG_NAMES]
    DEFAULT_CONFIG_NAME = "default"

    def _generate_config(self) -> GenerateConfig:
        return GenerateConfig.from_kwargs(**self.config.generate_kwargs)

    def _info(self):
        config, problems = self._generate_config(), []
        listing = list_foregrounds(config.content, config.run, problems, [])  # the cut-outs' categories
        if problems:
            raise UsageError(problems)
        content, field_of_view = config.content, False
        if content.with_depth:  # only a model that predicts its field of view stores the focal lengths
            from builder.run.depth import predicts_field_of_view

            field_of_view = predicts_field_of_view(content.depth_model, content.depth_input_size, content.resolution,
                                                   content.depth_kind)
        groups = column_groups(content, with_categories(listing.cutouts), from_coco(listing.source),
                               config.run.bg_depth_dir is not None, field_of_view)
        return datasets.DatasetInfo(features=features(self.config.name, **groups))

    def _split_generators(self, dl_manager):
        config = self._generate_config()
        inputs = load_inputs(config.content, config.run)  # every input problem is raised now, before any work
        if problems := config.content.split_problems(len(inputs.bg_files), len(inputs.cutouts)):
            raise UsageError(problems)
        plan = RenderContext(config.content, inputs).plan
        dataset_config = CONFIG_BY_NAME[self.config.name]
        return [datasets.SplitGenerator(name=split, gen_kwargs={"tasks": shard_tasks(
                    self.config.name, dataset_config.count_rows(plan, split), config.content.shard_size, split)})
                for split in plan.splits]

    def _generate_examples(self, tasks):
        import torch  # imported on use: reading a dataset with this module needs no torch

        from builder.run.pipeline import iter_rows

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        key = SCHEMA_BY_NAME[self.config.name].key_column
        for row in iter_rows(self._generate_config(), tasks, device):
            yield row[key], row

