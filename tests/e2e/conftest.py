"""Fixtures of the e2e tier: simulated workers a test can kill, stop or start late."""
from __future__ import annotations

import signal

import pytest

from harness.run.local_workers import LocalWorkers

SLOW_SIM = ("--step-ms", "20", "--max-seqs", "8", "--prefill-tps", "100000")


@pytest.fixture
def slow_sim_args() -> tuple[str, ...]:
    """Sim engine flags slow enough that a run is still going when a test interferes."""
    return SLOW_SIM


@pytest.fixture
def sim_workers(tmp_path):
    started = []

    def start(count: int = 2) -> LocalWorkers:
        workers = LocalWorkers(count, "sim", "sim-model", tmp_path, list(SLOW_SIM))
        started.append(workers)
        workers.wait_ready(30)
        return workers
    yield start
    for workers in started:
        for worker in workers.workers:
            if worker.running:
                worker.send_signal(signal.SIGCONT)
        workers.stop()


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium driven by Playwright (never a downloaded browser); skipped when absent.
    Module-scoped: Playwright's sync API keeps an event loop running in the main thread while it is
    open, and every later test that calls asyncio.run() would fail."""
    import os
    import shutil
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[all]')")
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
