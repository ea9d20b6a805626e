"""Checking a finished dataset against its own definition by recomputing it: checksums, layout, every row
against its inputs as stored, statistics, several-object scenes, and the depth model run again (`--depth N`).

Modules: runner, checksums, layout, reader, stored, checks, scenes, stats, depth.

May import: contract, rows, store, run.
Must not be imported by: contract, rows, store, run (the generation path carries no checking code)."""
