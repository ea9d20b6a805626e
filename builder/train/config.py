"""The reference trainer's settings: one typed config, validated once, recorded in RUN/train_config.json.

A rerun into the same RUN resumes; it must train the same thing, so every field but `max_steps`,
`eval_every`, `save_every` and `workers` has to match the recorded config.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from builder.contract.cli import StrictParser
from builder.contract.errors import UsageError

CONFIG_FILE = "train_config.json"
# Fields a resumed run may change: how long, how often to look and save, how many loader processes.
RESUMABLE_CHANGES = ("max_steps", "eval_every", "save_every", "workers")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    dataset: str
    output_dir: str
    max_steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    eval_every: int = 250
    save_every: int = 250
    width: int = 16
    levels: int = 3
    workers: int = 2
    eval_split: str = "validation"

    def __post_init__(self):
        problems = [f"--{name.replace('_', '-')} {getattr(self, name)}: use 1 or more"
                    for name in ("max_steps", "batch_size", "width", "levels")
                    if getattr(self, name) < 1]
        problems += [f"--{name.replace('_', '-')} {getattr(self, name)}: use 0 or more"
                     for name in ("eval_every", "save_every", "workers", "weight_decay", "seed")
                     if getattr(self, name) < 0]
        if not self.lr > 0:
            problems.append(f"--lr {self.lr}: use a positive learning rate")
        if problems:
            raise UsageError(problems)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    def architecture(self) -> dict:
        """The network's constructor arguments (what `save_pretrained` records in config.json)."""
        return {"width": self.width, "levels": self.levels}

    def check_resumable(self, recorded: dict) -> None:
        """Refuse to resume a run that was started with different data, model or optimisation settings."""
        mine = dataclasses.asdict(self)
        changed = [f"--{key.replace('_', '-')}: {recorded.get(key)!r} in {self.run_dir / CONFIG_FILE}, "
                   f"{mine[key]!r} now" for key in mine
                   if key not in RESUMABLE_CHANGES and recorded.get(key) != mine[key]]
        if changed:
            raise UsageError(changed + [f"{self.run_dir} holds a run with other settings: give a new "
                                        "--output-dir, or the same settings to resume it"])

    def record(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / CONFIG_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        temporary.replace(path)

    @classmethod
    def recorded(cls, run_dir: Path) -> dict | None:
        path = run_dir / CONFIG_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    @classmethod
    def from_args(cls, argv: list[str]) -> TrainConfig:
        parser = StrictParser(prog="train.py", description=(
            "Train the reference U-Net on an fgbg-depth dataset (train split); rerun to resume."))
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        parser.add_argument("--dataset", required=True, help="generated dataset folder, export folder or Hub repo")
        parser.add_argument("--output-dir", required=True, help="the run folder: checkpoints and metrics")
        helps = {"max_steps": "optimiser steps in total", "batch_size": "rows per step and process",
                 "lr": "AdamW learning rate (constant)", "weight_decay": "AdamW weight decay",
                 "seed": "model initialisation and data order",
                 "eval_every": "validate every N steps (0: at the end only)",
                 "save_every": "checkpoint every N steps (0: at the end only)",
                 "width": "U-Net channels at full resolution",
                 "levels": "U-Net downsamplings", "workers": "DataLoader worker processes per process",
                 "eval_split": "split to validate on, skipped when the dataset has none"}
        for name, text in helps.items():
            kind = type(defaults[name])
            parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=defaults[name],
                                help=f"{text} (default {defaults[name]})")
        return cls(**vars(parser.parse_args(argv)))
