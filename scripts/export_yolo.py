"""Export a dataset's composites as YOLO segmentation, the layout the Ultralytics tools read.

    python scripts/export_yolo.py OUT DIR          # OUT: a dataset folder (or export), or a Hub repo id
    yolo segment train data=DIR/data.yaml          # with Ultralytics installed

DIR/images/<split>/<sample_id>.jpg, DIR/labels/<split>/<sample_id>.txt (a line `class x1 y1 x2 y2 ...` per visible
object: its outer contour, normalised to 0..1; empty for a row without one) and DIR/data.yaml (classes: the
cut-outs' categories, else one per cut-out source). Rows are streamed. Exit 2: OUT is not a dataset.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.publish.stream import CUTOUT_COLUMNS, ROW_COLUMNS, config_rows, split_names  # noqa: E402
from builder.publish.yolo import VALIDATION, classes, write_data_yaml, write_split  # noqa: E402


def export(source: str, folder: Path) -> int:
    splits = split_names(source)
    names, class_of = classes(row for split in splits
                              for row in config_rows(source, "foregrounds", split, CUTOUT_COLUMNS))
    for split in splits:
        rows = config_rows(source, "default", split, ROW_COLUMNS)
        count, objects = write_split(tqdm(rows, desc=f"yolo {split}", unit="row"), split, folder, class_of)
        print(f"{split}: {count:,} images, {objects:,} objects -> {folder / 'labels' / split}")
    print(f"{len(names):,} classes -> {write_data_yaml(folder, splits, names)}")
    if VALIDATION not in splits:
        print("no validation split: data.yaml's val is the train split (generate with --validation-backgrounds "
              "or --validation-foregrounds for a held-out one)")
    return 0


def main(argv=None) -> int:
    parser = StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the dataset: a folder (generate.py's --output-dir or an export) or a repo id")
    parser.add_argument("folder", type=Path, help="where the images, label files and data.yaml are written")
    args = parser.parse_args(argv)
    return run_command(lambda: export(args.source, args.folder), "export to YOLO")


if __name__ == "__main__":
    sys.exit(main())
