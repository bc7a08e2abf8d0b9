"""Thin wrapper: see harness.perf.accuracy_timing."""
from harness.perf.accuracy_timing import main

raise SystemExit(main())
