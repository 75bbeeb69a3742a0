"""Headless Chromium (Debian's ``chromium``) driven by Playwright's Python client, for the UI tests.

Never ``playwright install``: the browser is the system one, launched with a fresh profile
directory per context and flags that keep it off the network (no background fetches, no
component updates, no QUIC). Tests that need it skip with the reason when either piece is missing.

Screenshots go to one directory per test run (``OPENCLAW_UI_SCREENSHOTS`` or a pytest temp
directory); its path is printed at the end of the run (see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--metrics-recording-only",
]
#: The only outside name a test may use: mapped to loopback by the browser itself.
FOREIGN_HOST = "ui.test"


def chromium_path() -> str | None:
    found = os.environ.get("OPENCLAW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).exists() else None


def require_browser() -> str:
    """The Chromium executable, or skip (saying what to install)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install '.[test]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


class Browser:
    """One Playwright driver with any number of isolated Chromium profiles."""

    def __init__(self, exe: str, root: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.exe = exe
        self.root = root
        self._pw_cm = sync_playwright()
        self.pw = self._pw_cm.__enter__()
        self._contexts: list[Any] = []
        self._n = 0

    def context(self, *, extra_args: list[str] | None = None, viewport: tuple[int, int] = (1280, 860)) -> Any:
        """A fresh persistent profile (its own IndexedDB: a new browser, a new device identity)."""
        self._n += 1
        profile = self.root / f"profile-{self._n}"
        profile.mkdir(parents=True, exist_ok=True)
        ctx = self.pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=self.exe,
            args=[*FLAGS, *(extra_args or [])],
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        ctx.set_default_timeout(15_000)
        self._contexts.append(ctx)
        return ctx

    def close(self) -> None:
        for ctx in self._contexts:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001 - closing a dead browser must not mask the test's failure
                pass
        self._pw_cm.__exit__(None, None, None)


@contextmanager
def browser(root: Path) -> Iterator[Browser]:
    b = Browser(require_browser(), root)
    try:
        yield b
    finally:
        b.close()


class Recorder:
    """Page errors, console errors and WebSocket frames seen by one page (for assertions)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.frames_in: list[str] = []
        self.frames_out: list[str] = []
        self.sockets: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("websocket", self._ws)

    def _ws(self, ws: Any) -> None:
        self.sockets.append(ws.url)
        ws.on("framereceived", lambda f: self.frames_in.append(f if isinstance(f, str) else f.decode()))
        ws.on("framesent", lambda f: self.frames_out.append(f if isinstance(f, str) else f.decode()))


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``pred`` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def shot(page: Any, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
