"""Where users run the UI: a refused browser origin, an insecure context, and device pairing.

The gateway here pairs nothing silently (``gateway.nodes.pairing.autoApproveLocal: false``), so
even loopback browsers wait for approval, as LAN browsers always do. A foreign page origin is made
with Chromium's own host mapping (``ui.test`` → 127.0.0.1: no traffic leaves the machine); plain
``http://ui.test`` is also not a secure context, so the browser has no WebCrypto there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import FOREIGN_HOST, Browser, shot, wait_until
from uigw import TOKEN, Gateway, rpc, wait_connected


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {"gateway": {"nodes": {"pairing": {"autoApproveLocal": False}}}}
    with Gateway.running(tmp_path_factory.mktemp("ui-access"), config) as gateway:
        yield gateway


def _pending(port: int) -> list[dict[str, Any]]:
    return rpc(port, "device.pair.list", {})["payload"]["pending"]


def test_a_foreign_origin_then_an_insecure_context_are_explained(chrome: Browser, gw: Gateway, shots: Path) -> None:
    ctx = chrome.context(extra_args=[f"--host-resolver-rules=MAP {FOREIGN_HOST} 127.0.0.1"])
    page = ctx.new_page()
    origin = f"http://{FOREIGN_HOST}:{gw.port}"
    page.goto(f"{origin}/#token={TOKEN}")
    box = page.wait_for_selector('.refusal[data-kind="origin"]')
    # Before anything else fails, the page already says it cannot have a device identity here.
    assert "Not a secure context" in (page.text_content("#insecure-note") or "")
    words = box.text_content() or ""
    assert origin in words and "gateway.controlUi.allowedOrigins" in words
    assert "origin not allowed" in (page.text_content("#refusal-message") or "")
    assert page.locator("#conn-state").get_attribute("data-state") == "refused"
    shot(page, shots, "12-origin-refused")
    # The page names the fix; apply it (hot) and retry: now the browser's context is the problem.
    cfg = gw.config()
    cfg["gateway"].setdefault("controlUi", {})["allowedOrigins"] = [origin]
    gw.config_path.write_text(json.dumps(cfg))
    wait_until(lambda: "config hot reload applied (gateway.controlUi.allowedOrigins)" in gw.log(), 15, "the allowlist to apply")
    page.click('.refusal[data-kind="origin"] button:has-text("Retry")')
    box = page.wait_for_selector('#notice .refusal[data-kind="insecure"] >> text=control ui requires device identity')
    assert page.evaluate("() => window.isSecureContext") is False
    notice = page.text_content("#notice") or ""
    assert "HTTPS" in notice and f"ssh -N -L {gw.port}:127.0.0.1:{gw.port}" in notice
    assert page.locator("#insecure-note").count() == 0  # said once, by the refusal itself
    shot(page, shots, "13-insecure-context")
    ctx.close()


def test_a_new_browser_waits_for_approval_then_connects(chrome: Browser, gw: Gateway, shots: Path) -> None:
    first = chrome.context().new_page()
    first.goto(f"{gw.url}/#token={TOKEN}")
    box = first.wait_for_selector('.refusal[data-kind="pairing"]')
    (pending,) = wait_until(lambda: _pending(gw.port), 10, "the pairing request")
    assert pending["requestId"] in (box.text_content() or "")
    assert pending["clientId"] == "openclaw-control-ui"
    assert first.locator("#conn-state").get_attribute("data-state") == "pairing"
    shot(first, shots, "14-pairing-wait")
    # Approved out of band (the CLI way); the waiting page connects by itself.
    assert rpc(gw.port, "device.pair.approve", {"requestId": pending["requestId"]})["ok"]
    wait_connected(first, timeout=15)
    # A second browser (a new device identity) is approved from the first one's Channels page.
    second = chrome.context().new_page()
    second.goto(f"{gw.url}/#token={TOKEN}")
    second.wait_for_selector('.refusal[data-kind="pairing"]')
    first.click("#nav-channels")
    approve = first.wait_for_selector("button[data-approve]", timeout=15_000)
    request_id = approve.get_attribute("data-approve")
    shot(first, shots, "15-channels-pending-device")
    approve.click()
    first.wait_for_selector("text=No device is waiting for approval.")
    wait_connected(second, timeout=15)
    paired = rpc(gw.port, "device.pair.list", {})["payload"]["paired"]
    assert len(paired) == 2 and all(p["clientId"] == "openclaw-control-ui" for p in paired)
    assert request_id and request_id not in json.dumps(_pending(gw.port))
