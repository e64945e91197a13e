"""Browser tests: Debian's Chromium driven by Python Playwright (sync API).

Playwright's own browser download does not work in this environment; it launches the
system ``chromium`` through ``executable_path`` instead. Without a Chromium the tests are
skipped with a message, except under CI (``CI=true``), where that is a failure.
Playwright itself is a declared test dependency (the ``test`` extra): without it the
tests error at import, as for any other missing dependency.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from .live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{reason}: browser tests skipped")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    path = find_chromium()
    if path is None:
        unavailable("no Chromium executable found (apt-get install chromium, or set CHROMIUM_PATH)")
    expect.set_options(timeout=10_000)
    # Package scope: Playwright's loop is gone before the asyncio-based tests elsewhere run.
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def live_server() -> Iterator[LiveServer]:
    # A short retry makes a wrongful EventSource reconnect show within a test's patience.
    server = LiveServer(retry_ms=200).start()
    yield server
    server.stop()


@pytest.fixture
def live(live_server: LiveServer) -> LiveServer:
    live_server.reset()
    return live_server


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions of the test's pages; any makes the test error at teardown."""
    return []


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any, page_errors: list[str]) -> Iterator[Any]:
    pg = context.new_page()
    pg.on("pageerror", lambda exc: page_errors.append(str(exc)))
    yield pg
    # An uncaught exception in the page is a bug even when the test's asserts passed.
    assert not page_errors, page_errors


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
