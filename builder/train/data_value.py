"""What each data option buys: the same network, trained for the same steps on datasets made with each
option from the same photographs, scored on the same held-out validation composites.

An option and an evaluation set are both a name and the extra arguments of scripts/generate.py that make
their dataset (e.g. `realistic=--augment realistic`); datasets with equal arguments are generated once. A
model trains on its option's `train` split and is scored on every evaluation set's `validation` split,
whose backgrounds and cut-outs no train split contains (the same `--seed` holds out the same inputs).
Everything lands in one work folder; a rerun reuses finished datasets and runs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from builder.contract.errors import FgbgError, UsageError
from builder.train.checkpoint import load_network, resolve_model
from builder.train.config import TrainConfig
from builder.train.evaluation import score_model
from builder.train.metrics import METRIC_NAMES
from builder.train.trainer import METRICS_FILE, train

GENERATE = Path(__file__).resolve().parents[2] / "scripts" / "generate.py"
FLOOR = "constant prediction"  # the table's last row


@dataclass(frozen=True)
class DataOption:
    """A named set of extra generate.py arguments, e.g. `realistic=--augment realistic`."""

    name: str
    arguments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> DataOption:
        name, separator, arguments = text.partition("=")
        if not separator or not name.strip():
            raise UsageError([f"{text!r}: write an option as NAME=GENERATE_ARGUMENTS, e.g. "
                              "'realistic=--augment realistic'"])
        return cls(name.strip(), tuple(shlex.split(arguments)))

    def folder(self) -> str:
        """The dataset folder name: equal arguments share one dataset."""
        return "data-" + hashlib.sha256(shlex.join(self.arguments).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Experiment:
    work_dir: Path
    common: tuple[str, ...]  # generate.py arguments every dataset shares (inputs, R, placements, hold-out, model)
    options: tuple[DataOption, ...]
    eval_sets: tuple[DataOption, ...]
    steps: int
    batch_size: int
    lr: float
    seed: int

    def dataset(self, option: DataOption) -> Path:
        return self.work_dir / option.folder()

    def run_dir(self, option: DataOption) -> Path:
        return self.work_dir / f"run-{option.name}"


def generate(experiment: Experiment, option: DataOption) -> Path:
    """The option's dataset, generated with scripts/generate.py unless a finished one is there."""
    out = experiment.dataset(option)
    if not (out / "stats.json").is_file():
        command = [sys.executable, str(GENERATE), "--output-dir", str(out), "--seed", str(experiment.seed),
                   *experiment.common, *option.arguments]
        print(f"generating {option.name}: {shlex.join(command[1:])}", file=sys.stderr, flush=True)
        if subprocess.run(command).returncode != 0:
            raise FgbgError(f"generating the {option.name!r} dataset failed (messages above); fix and rerun: "
                            "finished datasets and runs are reused")
    return out


def train_option(experiment: Experiment, option: DataOption) -> dict:
    """Train on the option's train split (resuming a finished or interrupted run); the step time."""
    config = TrainConfig(dataset=str(experiment.dataset(option)), output_dir=str(experiment.run_dir(option)),
                         max_steps=experiment.steps, batch_size=experiment.batch_size, lr=experiment.lr,
                         seed=experiment.seed, eval_every=0, save_every=0, workers=0)
    print(f"training on {option.name}: {experiment.steps} steps of {experiment.batch_size} rows", file=sys.stderr,
          flush=True)
    train(config)
    last = json.loads((config.run_dir / METRICS_FILE).read_text().splitlines()[-1])
    return {"run": config.output_dir, "train_loss": last["loss"], "seconds_per_step": last["seconds_per_step"]}


class ConstantPrediction(torch.nn.Module):
    """The floor a trained network has to beat: an empty mask and a flat disparity (which the per-image
    alignment turns into the label's mean)."""

    def forward(self, bg: torch.Tensor, fg_bg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = torch.zeros_like(fg_bg[:, :1])
        return flat - 1, flat


def score(experiment: Experiment, model: torch.nn.Module) -> dict:
    """A network on every evaluation set's validation split."""
    scores = {}
    for eval_set in experiment.eval_sets:
        sums = score_model(model, str(experiment.dataset(eval_set)), "validation", torch.device("cpu"),
                           rank=0, world_size=1)
        scores[eval_set.name] = sums.result()
    return scores


def run(experiment: Experiment) -> dict:
    """Generate, train and score every option; a JSON-ready report."""
    names = [option.name for option in experiment.options]
    if len(set(names)) != len(names):
        raise UsageError([f"option names {names} repeat: give each option its own name"])
    for option in {option.folder(): option for option in experiment.options + experiment.eval_sets}.values():
        generate(experiment, option)
    rows = {option.name: {"arguments": shlex.join(option.arguments), **train_option(experiment, option)}
            for option in experiment.options}
    for option in experiment.options:
        model = load_network(resolve_model(str(experiment.run_dir(option)))).eval()
        rows[option.name]["scores"] = score(experiment, model)
    rows[FLOOR] = {"arguments": None, "seconds_per_step": None, "scores": score(experiment, ConstantPrediction())}
    return {"common_arguments": shlex.join(experiment.common), "steps": experiment.steps,
            "batch_size": experiment.batch_size, "lr": experiment.lr, "seed": experiment.seed,
            "eval_sets": {s.name: shlex.join(s.arguments) for s in experiment.eval_sets}, "rows": rows}


def markdown_table(report: dict) -> str:
    """One row per option; per evaluation set: mask IoU, AbsRel, delta1; then the CPU time per step."""
    sets = list(report["eval_sets"])
    header = ["trained on"] + [f"{name} on `{s}` val" for s in sets for name in ("IoU", "AbsRel", "δ1")]
    lines = ["| " + " | ".join(header + ["s/step"]) + " |", "|" + " --- |" * (len(header) + 1)]
    for option, row in report["rows"].items():
        cells = [option if row["arguments"] is None else f"`{option}`"]
        for s in sets:
            cells += ["-" if row["scores"][s][m] is None else f"{row['scores'][s][m]:.3f}" for m in METRIC_NAMES]
        step = row["seconds_per_step"]
        lines.append("| " + " | ".join(cells + ["-" if step is None else f"{step:.3f}"]) + " |")
    return "\n".join(lines)
