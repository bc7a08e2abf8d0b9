"""Thin wrapper: see harness.perf.vllm_compare."""
from harness.perf.vllm_compare import main

raise SystemExit(main())
