"""Publish a generated dataset on the Hugging Face Hub as Parquet, with its card and sample grids.

    python scripts/push_to_hub.py OUT user/fgbg-depth [--private] [--revision BRANCH]
    python scripts/push_to_hub.py OUT user/fgbg-depth --export-only DIR    # write the Hub folder, upload nothing

The token comes from --token, HF_TOKEN or `hf auth login`. A rerun after an interruption uploads only what the
Hub does not have yet. Exit code 2: a problem to fix first (incomplete OUT, bad repo id, no token or no write
access, unknown license); nothing was uploaded.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.contract.errors import UsageError  # noqa: E402


def parse_size(text: str) -> int:
    units = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
    number = text.upper().rstrip("KMGIB")
    unit = text.upper()[len(number):]
    try:
        value = int(float(number) * units[unit])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 500MB") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def parser() -> StrictParser:
    from builder.publish.export import DEFAULT_MAX_FILE_BYTES, DEFAULT_ROW_GROUP_ROWS

    p = StrictParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output_dir", type=Path, help="the --output-dir of scripts/generate.py (a finished dataset)")
    p.add_argument("repo_id", help="dataset repo on the Hub, NAMESPACE/NAME")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its "
                   "visibility)")
    p.add_argument("--revision", help="branch to push to (created if missing; default: main)")
    p.add_argument("--token", help="Hugging Face token with write access (default: HF_TOKEN or the login cache); "
                   "prefer HF_TOKEN, command lines are visible to other users")
    p.add_argument("--license", help="license id for the card; required when the depth model's license is not "
                   "known (another model, or --no-depth)")
    p.add_argument("--license-name", help="with --license other: the license's id in the card (default: the repo's "
                   "name + '-license')")
    p.add_argument("--license-link", help="with --license other (required): a URL of the license text, or a file "
                   "in the dataset repo such as LICENSE")
    p.add_argument("--export-only", type=Path, metavar="DIR", help="write the exact folder that would be "
                   "uploaded into DIR and upload nothing")
    p.add_argument("--max-file-size", type=parse_size, default=DEFAULT_MAX_FILE_BYTES,
                   help=f"start a new Parquet file after this many bytes (default: {DEFAULT_MAX_FILE_BYTES:,})")
    p.add_argument("--row-group-rows", type=int, default=DEFAULT_ROW_GROUP_ROWS,
                   help=f"rows per Parquet row group, fewer when rows are large (default: {DEFAULT_ROW_GROUP_ROWS})")
    return p


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def publish(args: argparse.Namespace) -> None:
    from builder.contract.repo_id import check_repo_id
    from builder.publish.export import ExportOptions, export, export_summary, staged_export

    if args.row_group_rows < 1:
        raise UsageError([f"--row-group-rows {args.row_group_rows}: use at least 1"])
    options = ExportOptions(args.repo_id, args.license, args.license_name, args.license_link, args.max_file_size,
                            args.row_group_rows)
    if args.export_only:
        result = export(args.output_dir, args.export_only, options)
        log(export_summary(result))
        log(f"nothing uploaded; `load_dataset({str(args.export_only)!r}, streaming=True)` reads what the Hub "
            "would serve")
        return
    from huggingface_hub import get_token

    from builder.publish.upload import upload

    check_repo_id(args.repo_id)
    token = args.token or get_token()
    if not token:
        raise UsageError(["no Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass --token"])
    folder = staged_export(args.output_dir, options, log=log)
    info = upload(folder, args.repo_id, token, private=args.private, revision=args.revision, log=log)
    log(f"published: {info.commit_url}")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: publish(args), "publish", report=log,
                       interrupted="interrupted: rerun the same command; it uploads only what the Hub does not "
                                   "have yet")


if __name__ == "__main__":
    sys.exit(main())
