"""Benchmarks as data: what each MLPerf benchmark and scenario requires. Imports nothing of harness."""
