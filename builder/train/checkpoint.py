"""Checkpoints of a training run: RUN/checkpoint-STEP/ holds the network as `save_pretrained` writes it
(model.safetensors + config.json, loadable with `FgBgNet.from_pretrained`), the optimiser state and
trainer_state.json (step, and each rank's data position). A checkpoint is written into a temporary folder
and renamed into place, so a crash never leaves a half-written one where resume would find it."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from builder.contract.repo_id import REPO_ID
from builder.train.model import FgBgNet

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
_NAME = re.compile(r"checkpoint-(\d+)")


@dataclass(frozen=True)
class TrainerState:
    """Where a run stands after `step` optimiser steps: `positions[rank]` = (epoch, batches read in it)."""

    step: int
    positions: tuple[tuple[int, int], ...]

    @property
    def world_size(self) -> int:
        return len(self.positions)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / f"checkpoint-{step:06d}"


def last_checkpoint(run_dir: Path) -> Path | None:
    """The finished checkpoint with the most steps in `run_dir`, or None."""
    found = [(int(match.group(1)), path) for path in run_dir.glob("checkpoint-*")
             if (match := _NAME.fullmatch(path.name)) and (path / STATE_FILE).is_file()]
    return max(found)[1] if found else None


def save_checkpoint(run_dir: Path, model: FgBgNet, optimizer: torch.optim.Optimizer, state: TrainerState) -> Path:
    """Write checkpoint-STEP atomically (call on the main process only)."""
    final = checkpoint_dir(run_dir, state.step)
    temporary = final.with_name(final.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    torch.save(optimizer.state_dict(), temporary / OPTIMIZER_FILE)
    (temporary / STATE_FILE).write_text(json.dumps({"step": state.step, "positions": state.positions}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    return final


def load_state(checkpoint: Path) -> tuple[TrainerState, dict]:
    """The trainer state and the optimiser state dict (on the CPU) of a checkpoint."""
    data = json.loads((checkpoint / STATE_FILE).read_text())
    positions = tuple((int(epoch), int(batches)) for epoch, batches in data["positions"])
    optimizer = torch.load(checkpoint / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    return TrainerState(int(data["step"]), positions), optimizer


def load_network(model_path: str | Path) -> FgBgNet:
    """`FgBgNet.from_pretrained`, with the mixin's "Loading weights" print sent to stderr: the scripts' stdout
    is their JSON result."""
    with contextlib.redirect_stdout(sys.stderr):
        return FgBgNet.from_pretrained(model_path)


def resolve_model(run_or_model: str) -> str:
    """A run folder -> its last checkpoint; a checkpoint folder or a Hub model repo id -> itself."""
    path = Path(run_or_model)
    if not path.exists() and not REPO_ID.match(run_or_model):
        raise FileNotFoundError(f"{path} does not exist: give a training run folder (--output-dir of "
                                "scripts/train.py), a checkpoint folder or a Hub model repo id (NAMESPACE/NAME)")
    if path.is_dir() and not (path / "config.json").is_file():
        checkpoint = last_checkpoint(path)
        if checkpoint is None:
            raise FileNotFoundError(f"{path} holds no finished checkpoint-* folder: give a training run folder "
                                    "(--output-dir of scripts/train.py), a checkpoint folder or a Hub model repo")
        return str(checkpoint)
    return run_or_model
