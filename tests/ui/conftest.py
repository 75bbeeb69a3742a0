"""tests/ui: the Control UI. The shared helpers (``gateway_proc`` …) live one directory up.

Browser tests write screenshots to one directory per run (``OPENCLAW_UI_SCREENSHOTS``, else a
pytest temporary directory, never the checkout); its path is printed in the run's summary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from browser import Browser, browser  # noqa: E402 - needs the path above

_SHOTS: list[Path] = []


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's screenshots go."""
    chosen = os.environ.get("OPENCLAW_UI_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("ui-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    _SHOTS.append(path)
    return path


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Playwright driver per test module (each ``chrome.context()`` is a fresh profile)."""
    with browser(tmp_path_factory.mktemp("ui-profiles")) as b:
        yield b


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook signature
    for path in _SHOTS:
        count = len(list(path.glob("*.png")))
        terminalreporter.write_line(f"Control UI screenshots ({count}): {path}")
