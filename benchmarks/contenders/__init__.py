"""Contenders: each runs in a fresh child process, reads a spec, prints one JSON result.

They import only the standard library and ``benchmarks.protocol`` at module level, so
the LOTUS contender can run in its own venv.
"""
