"""The data-value table: the same network trained for the same steps on each data option, scored on the same
held-out validation composites (see builder/train/data_value.py and docs/training.md).

    python scripts/data_value.py --work-dir dv/ [--output dv.json]      # CPU-sized: R = 64, minutes
    python scripts/data_value.py --work-dir dv/ --resolution 224 --steps 5000 --batch-size 64 \\
        --depth-model depth-anything/Depth-Anything-V2-Small-hf --depth-input-size 518   # GPU, real model

Options and evaluation sets are NAME=GENERATE_ARGUMENTS; add rows as generate.py learns them, e.g.
--options 'none=--augment none' 'realistic=--augment realistic' 'ground=--augment realistic --placement-mode ground'.
Inputs: --photos DIR, else scikit-image's bundled photographs (`pip install scikit-image`), cut as
builder/bench/inputs.py cuts them into backgrounds and soft-edged cut-outs.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.contract.errors import UsageError  # noqa: E402
from builder.run.launch import passive_openmp_waits  # noqa: E402

DEFAULT_OPTIONS = ["none=--augment none", "realistic=--augment realistic"]
DEFAULT_EVAL_SETS = ["realistic=--augment realistic", "none=--augment none"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = StrictParser(prog="data_value.py", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--work-dir", type=Path, required=True, help="datasets and runs go here; a rerun reuses finished ones")
    add("--photos", type=Path, help="folder of photographs (default: scikit-image's)")
    add("--backgrounds", type=int, default=10, help="background crops (default 10)")
    add("--foregrounds", type=int, default=10, help="soft-edged cut-outs (default 10)")
    add("--validation-backgrounds", type=int, default=2, help="held out for validation (default 2)")
    add("--validation-foregrounds", type=int, default=2, help="held out for validation (default 2)")
    add("--resolution", type=int, default=64, help="R (default 64)")
    add("--placements", type=int, default=6, help="placements K (default 6)")
    add("--depth-model", help="depth model id or folder (default: a random-weight tiny Depth Anything made in "
                              "--work-dir, since no weights can be downloaded on the CPU machine)")
    add("--depth-input-size", type=int, default=56, help="side the depth model sees (default 56)")
    add("--options", nargs="+", default=DEFAULT_OPTIONS, help=f"NAME=GENERATE_ARGUMENTS (default {DEFAULT_OPTIONS})")
    add("--eval-sets", nargs="+", default=DEFAULT_EVAL_SETS,
        help=f"NAME=GENERATE_ARGUMENTS of the validation sets (default {DEFAULT_EVAL_SETS})")
    add("--steps", type=int, default=300, help="training steps per option (default 300)")
    add("--batch-size", type=int, default=16, help="rows per step (default 16)")
    add("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    add("--seed", type=int, default=0, help="data, hold-out and model seed (default 0)")
    add("--output", type=Path, help="also write the report as JSON here")
    return parser.parse_args(argv)


def experiment(args: argparse.Namespace):
    from builder.bench.inputs import photo_dir, photo_inputs
    from builder.testing.random_model import save_random_depth_model
    from builder.train.data_value import DataOption, Experiment

    options, eval_sets = tuple(map(DataOption.parse, args.options)), tuple(map(DataOption.parse, args.eval_sets))
    photos = photo_dir(args.photos)
    if photos is None:
        raise UsageError(["no photographs: pip install scikit-image, or give --photos DIR"])
    inputs = args.work_dir / "inputs"
    if not (inputs / "fg").is_dir():
        photo_inputs(inputs, photos, args.backgrounds, args.foregrounds)
    model = args.depth_model
    if model is None:
        model = str(args.work_dir / "random-tiny-depth")
        if not Path(model, "config.json").is_file():
            save_random_depth_model(model)
    common = ["--bg-dir", str(inputs / "bg"), "--fg-dir", str(inputs / "fg"), "--resolution", str(args.resolution),
              "--placements", str(args.placements), "--validation-backgrounds", str(args.validation_backgrounds),
              "--validation-foregrounds", str(args.validation_foregrounds), "--depth-model", model,
              "--depth-input-size", str(args.depth_input_size)]
    return Experiment(args.work_dir, tuple(common), options, eval_sets, args.steps, args.batch_size, args.lr,
                      args.seed)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)

    def run() -> None:
        passive_openmp_waits()  # before torch loads: spinning OpenMP threads collapse on shared cores
        from builder.train.data_value import markdown_table
        from builder.train.data_value import run as run_experiment
        from builder.train.trainer import share_cpu_cores

        share_cpu_cores()
        report = run_experiment(experiment(args))
        print(markdown_table(report))
        if args.output:
            args.output.write_text(json.dumps(report, indent=2) + "\n")

    return run_command(run, "measure the data value")


if __name__ == "__main__":
    sys.exit(main())
