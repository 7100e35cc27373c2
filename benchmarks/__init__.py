"""Benchmarks of pandas_llm_annotate against the embedded simulator; see ``run.py``."""
