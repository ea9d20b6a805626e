"""Rows as pure functions of their index and the inputs: reading and checking the inputs (sources/: RGBA
folders, photo + mask folders, COCO instances), placing cut-outs, compositing, realistic augmentation, several
objects, encoding the stored images and their exact statistics. Runs in the worker processes, so it loads neither
torch nor `datasets`.

Modules: assets, files, sources, demo, bg_depth, cache, pixels, placement, geometry, composite, scene, augment,
render, encode, stats, configs.

May import: contract.
Must not be imported by: contract."""
