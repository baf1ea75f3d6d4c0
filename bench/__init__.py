"""Benchmarks: `make bench` (python -m bench) prints figures and ratios against the machine's measured limits."""
