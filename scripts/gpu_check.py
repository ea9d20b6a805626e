"""The GPU machine check behind scripts/gpu_check.sh (which first installs the wheels the image lacks): see
builder/bench/gpu_check.py for its steps. Exit code 0: every step passed; 1: some did not (see OUTDIR/gpu_check.json);
2: usage."""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.bench.gpu_check import GPU_SIZES, SMOKE_SIZES, Paths, run_check  # noqa: E402
from builder.contract.cli import StrictParser  # noqa: E402


def main(argv=None) -> int:
    parser = StrictParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path, help="where gpu_check.json, gpu_check.log and benchmark.json go")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run the same flow on CPU at tiny sizes (a smoke check of the script itself)")
    parser.add_argument("--work", type=Path, default=None,
                        help="models, inputs and datasets (default: $GPU_CHECK_WORK, else a new temporary folder)")
    parser.add_argument("--started", type=float, default=None,
                        help="epoch seconds the check started (gpu_check.sh passes its own start: the wheels' "
                             "install counts towards the 8 minutes)")
    args = parser.parse_args(argv)
    work = args.work or Path(os.environ.get("GPU_CHECK_WORK") or tempfile.mkdtemp(prefix="fgbg-gpu-check-"))
    sizes = SMOKE_SIZES if args.cpu_smoke else GPU_SIZES
    return run_check(Paths(args.outdir.resolve(), work.resolve()), sizes, args.started or time.time())


if __name__ == "__main__":
    sys.exit(main())
