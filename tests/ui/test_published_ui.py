"""Interop: the published Control UI build (npm ``openclaw`` 2026.9.6, ``dist/control-ui``) served by
OUR gateway (``gateway.controlUi.root``) in a real browser: it loads, connects, shows the gateway
connected (Settings → Gateway, its overview of the connection) and chats with the offline agent.

Skips, saying why, when the published package is not installed. Gaps this test found were fixed
in the gateway (chat.startup, sessions.messages.subscribe, sessions.describe, agent.identity.get,
the published sessions.list filters, agents.list naming the effective model), not worked around.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, Recorder, shot
from gateway_proc import http_request
from uigw import TOKEN, Gateway


def published_build() -> Path | None:
    """``dist/control-ui`` of the installed published package (``OPENCLAW_REFERENCE_CONTROL_UI``,
    else next to the package the ``OPENCLAW_REFERENCE_BIN`` launcher runs)."""
    explicit = os.environ.get("OPENCLAW_REFERENCE_CONTROL_UI")
    if explicit:
        return Path(explicit) if (Path(explicit) / "index.html").is_file() else None
    launcher = os.environ.get("OPENCLAW_REFERENCE_BIN")
    if not launcher or not Path(launcher).is_file():
        return None
    found = re.search(r"\"([^\"]*node_modules/openclaw)/openclaw\.mjs\"", Path(launcher).read_text(errors="replace"))
    build = Path(found.group(1)) / "dist" / "control-ui" if found else None
    return build if build is not None and (build / "index.html").is_file() else None


@pytest.fixture(scope="module")
def build() -> Path:
    found = published_build()
    if found is None:
        pytest.skip(
            "the published Control UI build is not installed: run ../shared/tools/install-reference.sh and export "
            "OPENCLAW_REFERENCE_BIN (or OPENCLAW_REFERENCE_CONTROL_UI=<package>/dist/control-ui)"
        )
    return found


@pytest.fixture(scope="module")
def gw(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {"gateway": {"controlUi": {"root": str(build)}}}
    with Gateway.running(tmp_path_factory.mktemp("ui-published"), config) as gateway:
        yield gateway


def _failures(rec: Recorder) -> dict[str, str]:
    """Methods the published UI called that our gateway refused, with the message."""
    asked = {}
    for raw in rec.frames_out:
        frame = json.loads(raw)
        if frame.get("type") == "req":
            asked[frame["id"]] = frame["method"]
    out: dict[str, str] = {}
    for raw in rec.frames_in:
        frame = json.loads(raw)
        if frame.get("type") == "res" and not frame.get("ok") and frame.get("id") in asked:
            out.setdefault(asked[frame["id"]], frame["error"]["message"])
    return out


def test_our_gateway_serves_the_published_build(gw: Gateway, build: Path) -> None:
    status, headers, body = http_request("127.0.0.1", gw.port, "/")
    assert status == 200 and b'data-openclaw-control-ui-base-path=""' in body
    # Its inline boot scripts are allowed by hash, nothing else inline.
    assert re.search(r"script-src 'self' 'sha256-[^']+'", headers["content-security-policy"])
    asset = next(p.name for p in (build / "assets").glob("index-*.js"))
    status, headers, _ = http_request("127.0.0.1", gw.port, f"/assets/{asset}")
    assert status == 200 and headers["cache-control"] == "public, max-age=31536000, immutable"


def test_the_published_ui_connects_and_chats_with_the_offline_agent(chrome: Browser, gw: Gateway, shots: Path) -> None:
    page: Any = chrome.context().new_page()
    rec = Recorder(page)
    page.goto(f"http://localhost:{gw.port}/settings/connection#token={TOKEN}")
    page.wait_for_selector("text=Connected", timeout=30_000)
    page.wait_for_selector(f"text=localhost:{gw.port}")
    assert TOKEN not in page.url
    shot(page, shots, "20-published-gateway-connected")
    connect = next(json.loads(f)["params"] for f in rec.frames_out if '"method":"connect"' in f)
    assert connect["client"]["id"] == "openclaw-control-ui" and connect["device"]["signature"]
    page.goto(f"http://localhost:{gw.port}/chat")
    box = page.locator("textarea:visible").first
    box.wait_for(timeout=30_000)
    box.fill("hello from the published ui")
    box.press("Enter")
    page.wait_for_selector('text=You said: "hello from the published ui"', timeout=30_000)
    shot(page, shots, "21-published-chat")
    failures = _failures(rec)
    for needed in ("chat.startup", "chat.send", "sessions.messages.subscribe", "sessions.list", "agents.list", "agent.identity.get"):
        assert needed not in failures, failures
    # What remains unimplemented is reported, not hidden (see the report).
    print("published UI methods our gateway does not answer:", json.dumps(failures, indent=1, sort_keys=True))
