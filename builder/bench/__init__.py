"""scripts/benchmark.py's sections, one module each, and what they share. Installed with the package (so
`scripts/benchmark.py` runs from any clone) but used by nothing else; the measured reports live in benchmarks/.

Modules: common, report, inputs, rows, augment_parts, composite, ground, sources, coco_export, rank, depth, e2e,
loader, memory, scale, scale_inputs, gpu, gpu_check, gpu_check_steps.

May import: every other wing (contract, rows, store, run, verify, publish, train, testing).
Must not be imported by: contract, rows, store, run, verify, publish, train, testing."""
