"""Thin wrapper: see sut.worker.gpus."""
from sut.worker.gpus import main

raise SystemExit(main())
