"""scripts/benchmark.py's sections, one module each (composite, depth, e2e, memory, rank, gpu), and what they
share. Not part of the installed package; the measured reports live in benchmarks/."""
