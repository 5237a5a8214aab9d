"""Benchmarks, run by hand: `.venv/bin/python -m bench.NAME`. Timing goals live here."""
