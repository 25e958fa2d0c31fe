"""The speed harness: ``python -m benchmarks.speed --help``; the variants are data in variants.py."""
