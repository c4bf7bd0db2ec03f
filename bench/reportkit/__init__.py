"""Turning the bench scripts' results files into docs/benchmarks.md and its plots."""
