"""Generate the fgbg-depth dataset.

    accelerate launch scripts/generate.py --bg-dir BG --fg-dir FG --output-dir OUT
    accelerate launch scripts/generate.py --demo --output-dir demo_out

Exit code 2: invalid settings, inputs or output folder (every problem is listed, nothing is written).
Exit code 1: the disk (or a quota or file-size limit) filled up while writing; the unfinished shard is discarded,
finished shards are kept, and rerunning the same command after freeing space resumes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import print_error_once, run_command  # noqa: E402
from builder.contract.settings import GenerateConfig  # noqa: E402
from builder.publish import card  # noqa: E402
from builder.run.launch import cpu_processes_dropped_by_accelerate, generate, relaunch_cpu_processes  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dropped = cpu_processes_dropped_by_accelerate()
    if dropped:
        return relaunch_cpu_processes(__file__, argv, dropped)
    return run_command(lambda: generate(GenerateConfig.from_args(argv), card), "generate", report=print_error_once,
                       interrupted="interrupted: finished shards are kept; rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
