"""Benchmarks (run through scripts/bench.py)."""
