"""The benchmarks (make bench*); bench.logfill is shared with the services suite."""
