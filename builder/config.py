"""The one typed generation config, validated once, and its command-line form."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from fgbg_depth import DEFAULT_DEPTH_MODEL


class UsageError(Exception):
    """Bad settings or inputs: reported to the user with exit code 2, before any work is done."""

    def __init__(self, problems: list[str], warnings: list[str] = ()):
        self.problems, self.warnings = problems, list(warnings)
        super().__init__("\n".join([f"  - {p}" for p in problems] + [f"  warning: {w}" for w in self.warnings]))


def _option(default, help_text, **extra):
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    output_dir: Path | None = _option(None, "folder the dataset is written to")
    bg_dir: Path | None = _option(None, "folder of background images")
    fg_dir: Path | None = _option(None, "folder of foreground cut-outs with transparency")
    demo: bool = _option(False, "use small procedural backgrounds and cut-outs generated in code")
    resolution: int = _option(224, "side R of the square backgrounds, composites, masks and depth maps")
    placements: int = _option(20, "random placements K of every foreground (and its flip) on every background")
    seed: int = _option(0, "seed of every random choice; sample i draws from default_rng([seed, i])")
    scale_min: float = _option(0.3, "smallest foreground size: its longer side as a fraction of R")
    scale_max: float = _option(0.6, "largest foreground size: its longer side as a fraction of R")
    mask_threshold: int = _option(128, "mask is 255 where the placed alpha >= this (1..255)")
    jpeg_quality: int = _option(95, "JPEG quality of the composites and backgrounds")
    depth_model: str = _option(DEFAULT_DEPTH_MODEL, "transformers depth-estimation model id or local folder")
    depth_input_size: int = _option(518, "side of the square the depth model sees (a multiple of 14)")
    depth_dtype: str = _option("auto", "model dtype: auto (bf16 on CUDA, fp32 elsewhere), float32, float16, bfloat16",
                               choices=("auto", "float32", "float16", "bfloat16"))
    no_depth: bool = _option(False, "write composites and masks only, no depth columns")
    batch_size: int = _option(32, "samples per depth-model batch")
    shard_size: int = _option(4000, "rows per Arrow shard (the unit of work and of resumption)")
    overwrite: bool = _option(False, "delete an existing dataset in --output-dir and start over")

    def __post_init__(self):
        for name in ("output_dir", "bg_dir", "fg_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        problems = []
        if self.demo and (self.bg_dir or self.fg_dir):
            problems.append("--demo generates its own inputs: drop --bg-dir/--fg-dir, or drop --demo")
        if not self.demo and not (self.bg_dir and self.fg_dir):
            problems.append("give both --bg-dir and --fg-dir (or --demo for built-in inputs)")
        if self.resolution < 32:
            problems.append(f"--resolution {self.resolution} is too small: use 32 or more (default 224)")
        if self.placements < 1:
            problems.append(f"--placements {self.placements}: need at least 1 placement per foreground")
        if self.seed < 0:
            problems.append(f"--seed {self.seed}: use a non-negative integer")
        if not 0 < self.scale_min <= self.scale_max:
            problems.append(f"--scale-min {self.scale_min} / --scale-max {self.scale_max}: "
                            "need 0 < scale-min <= scale-max")
        if self.scale_max > 1:
            problems.append(f"--scale-max {self.scale_max}: a foreground whose longer side exceeds R "
                            "cannot fit inside the frame; use at most 1.0")
        if round(self.scale_min * self.resolution) < 1:
            problems.append(f"--scale-min {self.scale_min} at --resolution {self.resolution} is below one pixel")
        if not 1 <= self.mask_threshold <= 255:
            problems.append(f"--mask-threshold {self.mask_threshold}: use 1..255")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"--jpeg-quality {self.jpeg_quality}: use 1..100")
        if self.depth_input_size < 14 or self.depth_input_size % 14:
            problems.append(f"--depth-input-size {self.depth_input_size}: use a multiple of 14 (e.g. 518, 224)")
        if self.batch_size < 1:
            problems.append(f"--batch-size {self.batch_size}: use at least 1")
        if self.shard_size < 1:
            problems.append(f"--shard-size {self.shard_size}: use at least 1")
        if problems:
            raise UsageError(problems)

    @property
    def with_depth(self) -> bool:
        return not self.no_depth

    def content_settings(self) -> dict:
        """The settings a dataset's content depends on: a rerun must match them to resume."""
        keys = ("resolution", "placements", "seed", "scale_min", "scale_max", "mask_threshold",
                "jpeg_quality", "shard_size", "no_depth")
        depth_keys = ("depth_model", "depth_input_size", "depth_dtype") if self.with_depth else ()
        return {k: getattr(self, k) for k in keys + depth_keys}

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            description="Generate the fgbg-depth dataset (composite + mask + depth). "
                        "Run it with `accelerate launch` to use several processes or GPUs.")
        for field in dataclasses.fields(cls):
            flag = "--" + field.name.replace("_", "-")
            help_text = field.metadata["help"]
            if field.type in ("bool",):
                parser.add_argument(flag, action="store_true", help=help_text)
            else:
                kind = {"int": int, "float": float}.get(field.type, str)
                parser.add_argument(flag, type=kind, default=field.default, choices=field.metadata.get("choices"),
                                    help=f"{help_text} (default: {field.default})")
        return parser

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> "GenerateConfig":
        args = cls.parser().parse_args(argv)
        config = cls(**vars(args))
        if config.output_dir is None:
            raise UsageError(["give --output-dir, the folder the dataset is written to"])
        return config
