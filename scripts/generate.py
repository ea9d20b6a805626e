"""Generate the fgbg-depth dataset.

    accelerate launch scripts/generate.py --bg-dir BG --fg-dir FG --output-dir OUT
    accelerate launch scripts/generate.py --demo --output-dir demo_out

Exit code 2: invalid settings, inputs or output folder (every problem is listed, nothing is written).
Exit code 1: the disk (or a quota or file-size limit) filled up while writing; the unfinished shard is discarded,
finished shards are kept, and rerunning the same command after freeing space resumes.
"""

import errno
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.config import GenerateConfig, UsageError  # noqa: E402
from builder.depth import DepthModelError  # noqa: E402
from builder.launch import cpu_processes_dropped_by_accelerate, relaunch_cpu_processes  # noqa: E402


DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def report(message: str) -> None:
    """Every process meets the same problem; one copy per machine is enough (each node has its own log)."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(message, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dropped = cpu_processes_dropped_by_accelerate()
    if dropped:
        return relaunch_cpu_processes(__file__, argv, dropped)
    config = None
    try:
        config = GenerateConfig.from_args(argv)
        from builder.pipeline import run

        run(config)
    except UsageError as err:
        report(f"error: cannot generate:\n{err}")
        return 2
    except DepthModelError as err:
        report(f"error: {err}")
        return 2
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        where = config.output_dir if config is not None else "the output folder"
        print(f"error: out of disk space while writing into {where}: {err}\n"  # any one process can hit this
              "  The unfinished shard was discarded and finished shards are kept: free space (or raise the quota or "
              "file-size limit) and rerun the same command to resume.", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        report("interrupted: finished shards are kept; rerun the same command to resume")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
