"""Benchmarks: `python -m bench` (or `make bench`) runs them all and prints one line per figure,
its same-run baseline and the ratio; see bench/README.md. Not part of `make test`."""
