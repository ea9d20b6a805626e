"""What leaves the folder: the dataset card, sample grids and merged statistics, the Hub layout (Parquet
export) and its upload, the license, and the COCO and YOLO exports with the row stream they share.

Modules: card, source_card, export, upload, license, stream, coco, yolo, polygon.

May import: contract, rows, store, run, verify.
Must not be imported by: contract, rows, store, run, verify."""
