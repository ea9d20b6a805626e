"""Stand-ins for what cannot be downloaded here: random-weight Depth Anything models and tiny random models
of every depth family, saved as local folders and loaded through `from_pretrained`, and a stand-in depth estimator
for benchmarks only. Used by tests/ and builder/bench; never by a generation a user runs.

Modules: random_model, random_families, standin_depth.

May import: contract, rows, store, run, verify, publish, train.
Must not be imported by: contract, rows, store, run, verify, publish, train."""
