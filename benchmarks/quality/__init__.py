"""The quality harness: ``python -m benchmarks.quality --help``; the experiments are data in experiments.py."""
