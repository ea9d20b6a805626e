"""The reference training loop: accelerate (one CPU process, or N GPUs; mixed precision as accelerate is told),
seeded, resumable.

Each rank reads its own share of the train split through `torch_dataset` (which splits the rows by rank),
one batch per step, for exactly `max_steps` steps on every rank: epochs roll over per rank with `set_epoch`,
so ranks with a row more or less never wait on each other. A checkpoint records each rank's data position
(epoch, batches read), so a resumed run reads the very batch the uninterrupted run would have read next.
"""

from __future__ import annotations

import json
import os
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from builder.contract.errors import UsageError
from builder.run.launch import cpu_threads, use_cpu
from builder.train.checkpoint import TrainerState, last_checkpoint, load_network, load_state, save_checkpoint
from builder.train.config import TrainConfig
from builder.train.evaluation import MODEL_INPUTS, score_model
from builder.train.loader import torch_dataset
from builder.train.losses import total_loss
from builder.train.model import FgBgNet

METRICS_FILE = "metrics.jsonl"


class BatchStream:
    """One rank's endless sequence of training batches, starting at a data position (epoch, batches read)."""

    def __init__(self, dataset, batch_size: int, workers: int, position: tuple[int, int] = (0, 0)):
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers
        self.epoch, self.batches = position
        self._iterator = None

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.batches

    def _start_epoch(self, skip: int) -> None:
        self.dataset.set_epoch(self.epoch)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.workers)
        self._iterator = iter(loader)
        for _ in range(skip):  # resuming mid-epoch: read past the batches the run already trained on
            next(self._iterator)

    def next(self) -> dict:
        if self._iterator is None:
            self._start_epoch(self.batches)
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self.batches == 0:
                raise UsageError([f"this process (rank {self.dataset.rank} of {self.dataset.world_size}) got no "
                                  "training rows: use fewer processes or a dataset with more rows"]) from None
            self.epoch, self.batches = self.epoch + 1, 0
            self._start_epoch(0)
            batch = next(self._iterator)
        self.batches += 1
        return batch


def train_step(model, optimizer, batch: dict, accelerator: Accelerator) -> torch.Tensor:
    """One optimiser step on one batch; returns the (detached) loss."""
    mask_logits, disparity = model(batch["bg"], batch["fg_bg"])
    loss = total_loss(mask_logits, disparity, batch)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _start(config: TrainConfig, world_size: int) -> tuple[FgBgNet, TrainerState | None, dict | None]:
    """A new network, or the last checkpoint's network, trainer state and optimiser state."""
    recorded = TrainConfig.recorded(config.run_dir)
    if recorded is not None:
        config.check_resumable(recorded)
    checkpoint = last_checkpoint(config.run_dir)
    if checkpoint is None:
        return FgBgNet(**config.architecture()), None, None
    state, optimizer_state = load_state(checkpoint)
    if state.world_size != world_size:
        raise UsageError([f"{checkpoint} was written by {state.world_size} process(es), this run has {world_size}: "
                          "resume with the same number of processes, so every rank reads on where it stopped"])
    return load_network(checkpoint), state, optimizer_state


def _validate(config: TrainConfig, model, accelerator: Accelerator) -> dict | None:
    """Merged validation metrics on the eval split, or None when the dataset has no such split."""
    model.eval()
    try:
        sums = score_model(model, config.dataset, config.eval_split, accelerator.device, config.batch_size,
                           rank=accelerator.process_index, world_size=accelerator.num_processes)
    except FileNotFoundError:
        return None
    finally:
        model.train()
    sums.sums = accelerator.reduce(sums.sums, reduction="sum")
    return sums.result()


def _report(config: TrainConfig, accelerator: Accelerator, record: dict) -> None:
    if accelerator.is_main_process:
        with open(config.run_dir / METRICS_FILE, "a") as log:
            log.write(json.dumps(record) + "\n")
        tqdm.write(json.dumps(record))


def share_cpu_cores() -> None:
    """On CPU, each local process takes its share of the cores (2 processes x 2 threads on 2 cores spin)."""
    if use_cpu():
        torch.set_num_threads(cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def make_accelerator() -> Accelerator:
    """An Accelerator with the mixed precision accelerate was given: `accelerate launch --mixed_precision` or its
    config file (the launcher passes either on as ACCELERATE_MIXED_PRECISION), else none. Refused where it would
    not apply: fp16 on CPU (accelerate would train in fp32 without a word), bf16 on a GPU without it, fp8
    without its libraries."""
    try:
        accelerator = Accelerator(cpu=use_cpu())
    except ValueError as err:  # accelerate's own check of the precision against the device and libraries
        raise UsageError([f"accelerate refused its settings: {err}"]) from None
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise UsageError(["mixed precision fp16 does not run on CPU: launch with --mixed_precision bf16 or no"])
    return accelerator


def train(config: TrainConfig) -> dict | None:
    """Train to `config.max_steps`, resuming from the last checkpoint in the run folder; the last validation
    record on the main process."""
    accelerator = make_accelerator()
    set_seed(config.seed)
    model, state, optimizer_state = _start(config, accelerator.num_processes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)  # moves the moments onto the parameters' device
    dataset = torch_dataset(config.dataset, "train", shuffle=True, seed=config.seed, columns=MODEL_INPUTS,
                            rank=accelerator.process_index, world_size=accelerator.num_processes)
    if accelerator.is_main_process:
        config.record()  # only once the data is readable: a bad --dataset leaves no run folder behind
    step = state.step if state else 0
    stream = BatchStream(dataset, config.batch_size, config.workers,
                         state.positions[accelerator.process_index] if state else (0, 0))
    return _loop(config, accelerator, model, optimizer, stream, step)


def _loop(config: TrainConfig, accelerator: Accelerator, model, optimizer, stream: BatchStream, step: int):
    last = None
    bar = tqdm(total=config.max_steps, initial=step, desc="train", unit="step",
               disable=not accelerator.is_main_process)
    smoothed, seconds, steps, rows = None, 0.0, 0, 0  # seconds: in training steps only (data included)
    model.train()
    while step < config.max_steps:
        started = time.perf_counter()
        batch = {name: value.to(accelerator.device) for name, value in stream.next().items()}
        loss = train_step(model, optimizer, batch, accelerator).item()
        seconds += time.perf_counter() - started
        step, steps, rows = step + 1, steps + 1, rows + len(batch["mask"]) * accelerator.num_processes
        smoothed = loss if smoothed is None else 0.9 * smoothed + 0.1 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{smoothed:.4f}", rows_per_s=f"{rows / seconds:.1f}")
        if step % (config.eval_every or config.max_steps) == 0 or step == config.max_steps:
            metrics = _validate(config, model, accelerator)
            last = {"step": step, "loss": smoothed, "seconds_per_step": seconds / steps,
                    **({"validation": metrics} if metrics else {})}
            _report(config, accelerator, last)
        if step % (config.save_every or config.max_steps) == 0 or step == config.max_steps:
            _save(config, accelerator, model, optimizer, step, stream)
    bar.close()
    return last


def _save(config: TrainConfig, accelerator: Accelerator, model, optimizer, step: int, stream: BatchStream) -> None:
    position = torch.tensor([stream.position], dtype=torch.int64, device=accelerator.device)
    positions = accelerator.gather(position).tolist()  # rank order
    if accelerator.is_main_process:
        state = TrainerState(step, tuple(tuple(p) for p in positions))
        save_checkpoint(config.run_dir, accelerator.unwrap_model(model), optimizer, state)
    accelerator.wait_for_everyone()
