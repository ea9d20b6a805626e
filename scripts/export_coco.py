"""Export a dataset's composites as COCO instance segmentation: one JSON per split and the composites as files.

    python scripts/export_coco.py OUT DIR          # OUT: a dataset folder (or export), or a Hub repo id

DIR/annotations/instances_<split>.json (RLE masks, bbox, area, iscrowd 0; the source's categories, or one
per cut-out source where it has none; image id = sample_id) and DIR/<split>/<sample_id>.jpg. Rows are streamed.
Exit 2: OUT is not a dataset.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datasets  # noqa: E402
from tqdm import tqdm  # noqa: E402

from builder.contract.cli import StrictParser, run_command  # noqa: E402
from builder.contract.errors import UsageError  # noqa: E402
from builder.publish.coco import categories, write_split  # noqa: E402

UNDECODED = ("fg_bg", "mask", "instance_mask")
COLUMNS = ("fg_bg", "mask", "instance_mask", "sample_id", "fg_id", "objects")


def _small_columns(foregrounds):
    """The foregrounds rows without their images: ids, source names and, where the dataset has them, categories."""
    return foregrounds.select_columns([c for c in ("fg_id", "source", "category", "category_id")
                                       if c in foregrounds.features])


def export(source: str, folder: Path) -> int:
    try:
        splits = datasets.get_dataset_split_names(source, "default")
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds for a missing or foreign dataset
        raise UsageError([f"{source}: not an fgbg-depth dataset folder or Hub repo id ({type(err).__name__}: "
                          f"{err}); give the --output-dir of generate.py, an export, or a repo id"]) from None
    cats, category_ids = categories(row for split in splits for row in _small_columns(datasets.load_dataset(
        source, "foregrounds", split=split, streaming=True)))
    for split in splits:
        rows = datasets.load_dataset(source, "default", split=split, streaming=True)
        rows = rows.select_columns([c for c in COLUMNS if c in rows.features])
        for column in UNDECODED:
            if column in rows.features:
                rows = rows.cast_column(column, datasets.Image(decode=False))
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
