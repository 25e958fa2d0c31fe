"""The load harness: ``python -m benchmarks.load --help``."""
