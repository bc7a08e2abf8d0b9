"""The performance scripts' code (scripts/bench_*.py wrap these modules). See DESIGN.md."""
