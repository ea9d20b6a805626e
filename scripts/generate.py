"""Generate the fgbg-depth dataset.

    accelerate launch scripts/generate.py --bg-dir BG --fg-dir FG --output-dir OUT
    accelerate launch scripts/generate.py --demo --output-dir demo_out

Exit code 2: invalid settings, inputs or output folder (every problem is listed, nothing is written).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.config import GenerateConfig, UsageError  # noqa: E402
from builder.depth import DepthModelError  # noqa: E402


def main(argv=None) -> int:
    try:
        config = GenerateConfig.from_args(argv)
        from builder.pipeline import run

        run(config)
    except UsageError as err:
        print(f"error: cannot generate:\n{err}", file=sys.stderr)
        return 2
    except DepthModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
