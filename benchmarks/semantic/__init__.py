"""Semantic-cache benchmark: `python -m benchmarks.semantic [--quick]` (see bench.py)."""
