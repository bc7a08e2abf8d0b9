"""Thin wrapper: see harness.perf.fanout."""
from harness.perf.fanout import main

raise SystemExit(main())
