"""Train the reference network on an fgbg-depth dataset; rerun the same command to resume.

    accelerate launch scripts/train.py --dataset OUT_OR_REPO --output-dir RUN [--max-steps N] [--batch-size B]
    accelerate launch --cpu --num_processes 2 scripts/train.py ...   # 2 CPU processes
    accelerate launch --mixed_precision bf16 scripts/train.py ...    # bf16 autocast (or fp16 on a GPU)
    python scripts/train.py ...                                      # one process, no launcher

Mixed precision is accelerate's: its --mixed_precision, else its config file (`accelerate config`), else none;
without a launcher, ACCELERATE_MIXED_PRECISION. fp16 is refused on CPU.

Checkpoints: RUN/checkpoint-STEP/ (load with `FgBgNet.from_pretrained`); metrics: RUN/metrics.jsonl.
Exit code 2: invalid settings, a dataset that cannot be read, or a RUN started with other settings.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import print_error_once, run_command  # noqa: E402
from builder.contract.errors import UsageError  # noqa: E402
from builder.run.launch import cpu_processes_dropped_by_accelerate, passive_openmp_waits, relaunch_cpu_processes  # noqa: E402
from builder.train.config import TrainConfig  # noqa: E402


def _train(argv: list[str]) -> None:
    config = TrainConfig.from_args(argv)
    passive_openmp_waits()  # before torch loads: spinning OpenMP threads collapse on shared cores
    from builder.train.trainer import share_cpu_cores, train

    share_cpu_cores()
    try:
        train(config)
    except FileNotFoundError as err:
        raise UsageError([str(err)]) from None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dropped = cpu_processes_dropped_by_accelerate()
    if dropped:
        return relaunch_cpu_processes(__file__, argv, dropped)
    return run_command(lambda: _train(argv), "train", report=print_error_once,
                       interrupted="interrupted: rerun the same command to resume from the last checkpoint")


if __name__ == "__main__":
    sys.exit(main())
