"""Check a generated dataset (generator output or a `--export-only` Parquet folder) by recomputing it.

    python scripts/verify.py OUT                # every row: images decoded, masks and composites recomputed
    python scripts/verify.py OUT --sample 50    # quick pass: 50 random rows per shard get the image checks
    python scripts/verify.py OUT --checksums    # seconds: every file against the sha256 recorded when written

Exit code 0: every check passed; 1: problems found (each names its shard and row); 2: not a dataset folder.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.verify.runner import verify, verify_checksums  # noqa: E402


def main(argv=None) -> int:
    parser = StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the dataset folder (--output-dir of generate.py, or an export)")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="decode and recompute only N random rows per shard (structure is still checked on "
                             "every row); default: all rows, which also recomputes stats.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --sample choice (default: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads decoding and recomputing rows (default: all cores)")
    parser.add_argument("--depth", type=int, default=None, metavar="N",
                        help="run the manifest's depth model again on N random rows per shard and compare with the "
                             "stored depth (needs the model: the HF cache, the network or its local folder)")
    parser.add_argument("--checksums", action="store_true",
                        help="check only that every data file has the sha256 recorded when it was written (one read "
                             "of each file, no row checks); a full pass checks them first too")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="manifest.json to check against (default: FOLDER/manifest.json)")
    parser.add_argument("--bg-depth-dir", type=Path, default=None,
                        help="optional, for a dataset made with --bg-depth-dir DIR (it verifies without): the same "
                             "DIR, whose maps are made again and compared with the stored ones (their crop, resize "
                             "and encoding, which the stored maps alone cannot show)")
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be at least 1")
    if args.depth is not None and args.depth < 1:
        parser.error("--depth must be at least 1")
    if args.checksums and (args.sample is not None or args.depth is not None):
        parser.error("--checksums checks no rows: drop --sample and --depth, or run them separately")

    def check() -> int:
        if args.checksums:
            report = verify_checksums(args.folder, workers=args.workers)
        else:
            report = verify(args.folder, sample=args.sample, seed=args.seed, workers=args.workers,
                            manifest=args.manifest, depth_rows=args.depth, bg_depth_dir=args.bg_depth_dir)
        print(report.summary())
        return 0 if report.ok else 1

    return run_command(check, "verify")


if __name__ == "__main__":
    sys.exit(main())
