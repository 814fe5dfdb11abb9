"""Benchmarks: ``make bench`` (``python -m bench``) prints one report and writes
bench/REPORT.md and bench/report.json. Every figure is a count or a ratio against a baseline
measured in the same run, on this machine; none is a timed assertion in a test."""
