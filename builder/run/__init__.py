"""Running a generation: the launchers (accelerate, independent tasks, several machines), the worker processes
and their shared-memory rings, the depth model on the accelerator with each family's input rules, progress and
liveness. A sample's content is decided in rows/; this wing only decides where and when it is computed.

Modules: phases, launch, tasks, cluster, pipeline, stored_depth, workers, feed, depth, depth_families, fallback,
progress, liveness.

May import: contract, rows, store.
Must not be imported by: contract, rows, store.

The generation path carries no checking code: nothing here imports the wings above it."""
