"""Fixtures for the browser tests: headless Chromium (the system's, through Playwright)
against an in-process server with its HTTP port open.

Chromium comes from the machine (Debian's ``chromium``; `.ci/run` installs it), never
from Playwright's download. Without it these tests skip, naming the package to install,
unless ``EVALSTREAM_REQUIRE_BROWSER=1`` (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..web.conftest import WebServer, _web_server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
#: Console messages that are the browser reporting an HTTP refusal a test asked for.
_EXPECTED_CONSOLE = ("Failed to load resource",)


def _chromium() -> str:
    path = (
        os.environ.get("EVALSTREAM_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path:
        return path
    message = "no chromium: apt-get install -y chromium (or set EVALSTREAM_CHROMIUM)"
    if os.environ.get("EVALSTREAM_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: Playwright's sync API runs an event loop on the main thread while
    it is started, and every later test calling ``asyncio.run`` would fail ("cannot be
    called from a running event loop"); stopped at the end of each module, it is gone
    before the next directory's tests.
    """
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageErrors(list[str]):
    """Uncaught script errors and console errors of a page (HTTP refusals aside)."""


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x800; the test fails on a script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.on("pageerror", lambda exc: page_errors.append(f"pageerror: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            page_errors.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith(_EXPECTED_CONSOLE)
            else None
        ),
    )
    yield tab
    context.close()
    assert not page_errors, f"the page reported errors: {page_errors}"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    """An in-process server (BERTScore off) with its HTTP port on a free port."""
    yield from _web_server(tmp_path, {})
