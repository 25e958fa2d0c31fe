"""Benchmarks on mtst's public API, run as ``python -m benchmarks.<harness>``: quality (training runs scored by
mtst's own evaluation), speed (offline inference against sentence-transformers), load (``mtst serve`` under
concurrent clients); one-off studies in ``benchmarks.studies``. Shared pieces: ``benchmarks.common``."""
