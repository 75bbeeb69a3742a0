"""Our Control UI in a real browser (headless Chromium) against a real gateway process.

One gateway and one browser profile for the flow an operator follows: load the page, sign in with
the token, see the overview connected, chat with the offline default agent and watch the reply
stream, use the sessions, channels and logs pages, change a hot config key through the form (plan
first, then the applied result), use the debug console, and come back after the gateway restarts.
The tests of this module run in order on that one page. Screenshots of every page go to the run's
screenshot directory (see conftest.py).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, Recorder, shot, wait_until
from uigw import TOKEN, Gateway, refused_handshake, rpc, text, ui_state, wait_connected

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with Gateway.running(tmp_path_factory.mktemp("ui-gw")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def ui(chrome: Browser, gw: Gateway) -> Iterator[tuple[Any, Recorder]]:
    ctx = chrome.context()
    page = ctx.new_page()
    yield page, Recorder(page)


# --------------------------------------------------------------------------- the flow, in order


def test_sign_in_with_the_token_and_see_the_overview_connected(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, rec = ui
    page.goto(gw.url + "/")
    page.wait_for_selector("#login-secret")
    shot(page, shots, "01-login")
    page.fill("#login-secret", TOKEN)
    page.click("#login-submit")
    wait_connected(page)
    assert text(page, "#ov-state") == "connected"
    assert "py" in text(page, "#ov-version")
    page.wait_for_function("() => document.querySelector('#ov-reload') && document.querySelector('#ov-reload').textContent === 'active'")
    page.wait_for_selector("text=openclaw-control-ui")  # our own presence row
    shot(page, shots, "02-overview")
    # The secret is in this tab's session storage only, and never in a URL.
    assert TOKEN not in page.url
    stored = page.evaluate("() => Object.entries(sessionStorage).filter(([k]) => k.startsWith('openclaw.control.secret')).map(([, v]) => v)")
    assert stored == [TOKEN]
    assert page.evaluate("(t) => Object.values(localStorage).some(v => v.includes(t))", TOKEN) is False
    # One WebSocket, to the gateway that served the page, with a signed device identity.
    assert rec.sockets == [f"ws://127.0.0.1:{gw.port}/"]
    connect = next(json.loads(f) for f in rec.frames_out if '"method":"connect"' in f)
    params = connect["params"]
    assert params["client"] == {**params["client"], "id": "openclaw-control-ui", "mode": "webchat"}
    device = params["device"]
    assert len(device["id"]) == 64 and device["signature"] and device["nonce"]
    hello = page.evaluate("() => window.__openclawControl.conn.hello.auth")
    assert hello["method"] == "token" and "operator.admin" in hello["scopes"] and hello["deviceToken"]
    assert not rec.errors, rec.errors


def test_a_url_token_is_taken_once_and_a_gateway_url_parameter_is_ignored(chrome: Browser, gw: Gateway) -> None:
    ctx = chrome.context()
    page = ctx.new_page()
    rec = Recorder(page)
    # A gatewayUrl pointing elsewhere must never be used (CVE-2026-25253 leaked tokens that way).
    page.goto(f"{gw.url}/overview?gatewayUrl=ws%3A%2F%2F127.0.0.1%3A9%2F#token={TOKEN}")
    wait_connected(page)
    assert page.url == f"{gw.url}/overview"
    assert rec.sockets and all(s == f"ws://127.0.0.1:{gw.port}/" for s in rec.sockets)
    page.wait_for_selector("text=Ignored gatewayUrl")
    ctx.close()


def test_chat_streams_the_reply_of_the_offline_agent(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, rec = ui
    page.click("#nav-chat")
    page.wait_for_selector("#chat-input")
    page.fill("#chat-input", "hello from a real browser")
    page.click("#chat-send")
    done = page.wait_for_selector(".msg.assistant.done")
    reply = done.text_content() or ""
    assert 'You said: "hello from a real browser"' in reply and "offline echo" in reply
    run_id = done.get_attribute("data-run-id")
    assert int(done.get_attribute("data-deltas") or 0) >= 1
    deltas = [json.loads(f) for f in rec.frames_in if '"event":"chat"' in f and run_id in f and '"state":"delta"' in f]
    assert deltas, "the reply arrived as streamed chat delta events"
    shot(page, shots, "03-chat")
    # The transcript is the gateway's: a reload shows it again (chat.history).
    page.reload()
    wait_connected(page)
    page.wait_for_selector("text=hello from a real browser")
    page.wait_for_selector(".msg.assistant >> text=You said:")


def test_sessions_list_search_preview_reset_and_delete(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, _ = ui
    page.click("#nav-chat")
    page.fill("#chat-new-key", "scratch")
    page.click("#chat-new-key ~ button")
    page.fill("#chat-input", "a note for the scratch session")
    page.click("#chat-send")
    page.wait_for_selector(".msg.assistant.done >> text=a note for the scratch session")
    page.click("#nav-sessions")
    page.wait_for_selector('tr[data-key="agent:main:scratch"]')
    page.wait_for_selector('tr[data-key="agent:main:main"]')
    page.fill("#sessions-search", "scratch")
    page.wait_for_function("() => document.querySelectorAll('#sessions-list tr[data-key]').length === 1")
    page.click('tr[data-key="agent:main:scratch"] button[data-action="preview"]')
    page.wait_for_selector("#sessions-preview >> text=a note for the scratch session")
    shot(page, shots, "04-sessions")
    page.fill("#sessions-search", "")
    page.wait_for_selector('tr[data-key="agent:main:main"]')
    delete = page.locator('tr[data-key="agent:main:scratch"] button[data-action="delete"]')
    delete.click()
    delete.click()  # the second click confirms
    page.wait_for_selector('tr[data-key="agent:main:scratch"]', state="detached")
    reset = page.locator('tr[data-key="agent:main:main"] button[data-action="reset"]')
    reset.click()
    reset.click()
    page.wait_for_function(
        "() => { const r = document.querySelector('tr[data-key=\"agent:main:main\"]'); return r && r.children[3].textContent === '1'; }"
    )
    listing = rpc(gw.port, "sessions.list", {})["payload"]["sessions"]
    # As published, a reset keeps the session and leaves one system "Reset" entry in its transcript.
    assert [s["key"] for s in listing] == ["agent:main:main"] and listing[0]["messageCount"] == 1
    history = rpc(gw.port, "chat.history", {"sessionKey": "main"})["payload"]["messages"]
    assert [(m["role"], m["content"][0]["text"]) for m in history] == [("system", "Reset")]


def test_channels_page_shows_status_and_pending_pairings(ui: tuple[Any, Recorder], shots: Path) -> None:
    page, _ = ui
    page.click("#nav-channels")
    page.wait_for_selector("text=No channels are configured on this gateway.")
    page.wait_for_selector("text=No device is waiting for approval.")
    page.click("#channels-probe")
    page.wait_for_selector("#channels-probe:not([disabled])")
    shot(page, shots, "05-channels")


def test_logs_tail_shows_new_lines_with_filter_search_and_pause(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, _ = ui
    page.click("#nav-logs")
    page.wait_for_selector("#logs-view .logline")
    refused_handshake(gw.port)
    page.wait_for_selector("#logs-view .logline.lvl-warn >> text=handshake refused", timeout=10_000)
    shot(page, shots, "06-logs")
    page.select_option("#logs-level", "error")
    page.wait_for_selector("#logs-view >> text=handshake refused", state="detached")
    page.select_option("#logs-level", "info")
    page.fill("#logs-search", "handshake refused")
    page.wait_for_function("() => [...document.querySelectorAll('#logs-view .logline')].every(l => l.textContent.includes('handshake refused'))")
    count = page.locator("#logs-view .logline").count()
    page.click("#logs-pause")
    refused_handshake(gw.port)
    wait_until(lambda: gw.log().count("handshake refused") > count, 10, "the second refusal in the file log")
    page.wait_for_timeout(1500)  # at least one poll interval: nothing new while paused
    assert page.locator("#logs-view .logline").count() == count
    page.click("#logs-pause")
    page.wait_for_function(f"() => document.querySelectorAll('#logs-view .logline').length > {count}", timeout=10_000)
    page.fill("#logs-search", "")


def test_config_form_previews_the_plan_then_applies_a_hot_key(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, _ = ui
    page.click("#nav-config")
    page.wait_for_selector("#config-form details")
    page.fill("#config-filter", "maxAttempts")
    field = page.locator('input[data-path="gateway.auth.rateLimit.maxAttempts"]')
    field.fill("20")
    page.click("#config-preview")
    row = page.wait_for_selector('#config-plan tr[data-path="gateway.auth.rateLimit"]')
    assert row.get_attribute("data-applies") == "hot"
    assert "applies in place" in text(page, "#config-plan-summary")
    assert page.locator("#config-plan-summary").get_attribute("data-restart") == "false"
    shot(page, shots, "07-config-plan")
    page.click("#config-save")
    page.wait_for_selector('#config-result-status[data-state="applied"]', timeout=20_000)
    assert "in place, no restart" in text(page, "#config-result-status")
    shot(page, shots, "08-config-applied")
    cfg = gw.config()
    assert cfg["gateway"]["auth"]["rateLimit"] == {"maxAttempts": 20}
    assert cfg["gateway"]["auth"]["token"] == TOKEN  # the redacted secret was kept, not overwritten
    assert "config hot reload applied (gateway.auth.rateLimit)" in gw.log()
    assert rpc(gw.port, "config.plan", {})["payload"]["changes"] == []


def test_debug_console_calls_methods_and_streams_events(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, _ = ui
    page.click("#nav-debug")
    page.fill("#debug-method", "status")
    page.click("#debug-call")
    page.wait_for_selector('#debug-output[data-ok="true"] >> text=runtimeVersion')
    page.fill("#debug-method", "no.such.method")
    page.click("#debug-call")
    page.wait_for_selector('#debug-output[data-ok="false"] >> text=unknown method')
    rpc(gw.port, "system-event", {"text": "hello from the debug test"})
    page.wait_for_selector("#debug-events .event >> text=hello from the debug test")
    shot(page, shots, "09-debug")


def test_after_a_gateway_restart_the_page_reconnects(ui: tuple[Any, Recorder], gw: Gateway, shots: Path) -> None:
    page, _ = ui
    page.click("#nav-overview")
    wait_connected(page)
    before = ui_state(page)["connects"]
    # An in-process restart (SIGUSR1): the open page reconnects by itself, with backoff.
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGUSR1)
    page.wait_for_function(f"() => window.__openclawControl.conn.connects > {before} && window.__openclawControl.conn.state === 'connected'", timeout=20_000)
    page.wait_for_selector("text=Reconnected to the gateway")
    # A full stop: the page says it is reconnecting…
    gw.stop()
    page.wait_for_selector("#reconnect-banner", timeout=10_000)
    assert ui_state(page)["state"] == "reconnecting"
    shot(page, shots, "10-reconnecting")
    # …and after a new process on the same port, a reload connects again without signing in.
    gw.start()
    page.reload()
    wait_connected(page)
    assert page.locator("#login-secret").count() == 0
    assert text(page, "#ov-state") == "connected"
    shot(page, shots, "11-after-restart")
