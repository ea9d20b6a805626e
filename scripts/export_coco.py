"""Export a dataset's composites as COCO instance segmentation: one JSON per split and the composites as files.

    python scripts/export_coco.py OUT DIR          # OUT: a dataset folder (or export), or a Hub repo id

DIR/annotations/instances_<split>.json (RLE masks, bbox, area, iscrowd 0; the source's categories, or one
per cut-out source where it has none; image id = sample_id) and DIR/<split>/<sample_id>.jpg. Rows are streamed.
Exit 2: OUT is not a dataset.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.publish.coco import categories, write_split  # noqa: E402
from builder.publish.stream import CUTOUT_COLUMNS, ROW_COLUMNS, config_rows, split_names  # noqa: E402


def export(source: str, folder: Path) -> int:
    splits = split_names(source)
    cats, category_ids = categories(row for split in splits
                                    for row in config_rows(source, "foregrounds", split, CUTOUT_COLUMNS))
    for split in splits:
        rows = config_rows(source, "default", split, ROW_COLUMNS)
        count = write_split(tqdm(rows, desc=f"coco {split}", unit="row"), split, folder, cats, category_ids)
        print(f"{split}: {count:,} images -> {folder / 'annotations' / f'instances_{split}.json'}")
    return 0


def main(argv=None) -> int:
    parser = StrictParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the dataset: a folder (generate.py's --output-dir or an export) or a repo id")
    parser.add_argument("folder", type=Path, help="where the COCO JSON files and images are written")
    args = parser.parse_args(argv)
    return run_command(lambda: export(args.source, args.folder), "export to COCO")


if __name__ == "__main__":
    sys.exit(main())
