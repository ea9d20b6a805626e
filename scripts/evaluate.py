"""Score a trained network (or another dataset's labels) on an fgbg-depth dataset; prints one JSON object.

    python scripts/evaluate.py RUN OUT_OR_REPO [--split validation] [--output F]
    python scripts/evaluate.py --labels OTHER_OUT OUT_OR_REPO     # OTHER_OUT's masks and depth vs OUT_OR_REPO's

RUN: a training run folder (its last checkpoint), a checkpoint folder, or a Hub model repo id.
Metrics: mask_iou (per-image IoU of logits > 0), depth_absrel and depth_delta1 (per image, after least-squares
scale-and-shift alignment to the raw disparity label), each a mean over images; rows: images scored.
Exit code 2: a run, dataset or split that cannot be read.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.contract.errors import UsageError  # noqa: E402
from builder.run.launch import passive_openmp_waits  # noqa: E402


def parse(argv: list[str]) -> argparse.Namespace:
    parser = StrictParser(prog="evaluate.py", description=__doc__.split("\n")[0])
    parser.add_argument("predictions", help="training run folder, checkpoint folder or Hub model repo "
                                            "(with --labels: a dataset whose labels are scored)")
    parser.add_argument("dataset", help="dataset folder, export folder or Hub dataset repo with the reference labels")
    parser.add_argument("--split", default="validation", help="split to score (default validation)")
    parser.add_argument("--labels", action="store_true", help="PREDICTIONS is a dataset: score its mask and depth "
                                                              "labels against DATASET's, matched on sample_id")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per forward pass (default 32)")
    parser.add_argument("--output", type=Path, help="also write the JSON object to this file")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> dict:
    passive_openmp_waits()  # before torch loads: spinning OpenMP threads collapse on shared cores
    import torch

    from builder.train.checkpoint import load_network, resolve_model
    from builder.train.evaluation import score_labels, score_model

    try:
        if args.labels:
            sums = score_labels(args.predictions, args.dataset, args.split, args.batch_size)
            source = {"labels": args.predictions}
        else:
            model_path = resolve_model(args.predictions)
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            model = load_network(model_path).to(device).eval()
            sums = score_model(model, args.dataset, args.split, device, args.batch_size, rank=0, world_size=1)
            source = {"model": model_path}
    except (FileNotFoundError, ValueError) as err:
        raise UsageError([str(err)]) from None
    return {**sums.result(), **source, "dataset": args.dataset, "split": args.split}


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)

    def run() -> None:
        report = json.dumps(evaluate(args), indent=2)
        print(report)
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            temporary = args.output.with_name(args.output.name + ".tmp")
            temporary.write_text(report + "\n")
            temporary.replace(args.output)

    return run_command(run, "evaluate")


if __name__ == "__main__":
    sys.exit(main())
