"""More of the UI in a real browser: password sign-in, Stop on a streaming reply (``chat.abort``,
with a slow scripted upstream), and a sequence gap handled as a refresh, not an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_gateways import TOKEN as AGENT_TOKEN
from agent_gateways import agent_gateway
from browser import Browser, Recorder, shot
from gateway_proc import GatewayProcess, free_port, make_home
from uigw import wait_connected
from upstream import Text

PASSWORD = "correct horse battery staple"


def test_sign_in_with_the_gateway_password(chrome: Browser, tmp_path: Path) -> None:
    port = free_port()
    cfg = {"gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "password", "password": PASSWORD}}}
    with GatewayProcess(tmp_path, make_home(tmp_path, cfg)) as gw:
        gw.wait_ready(port, timeout=20)
        page = chrome.context().new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("#login-secret", "not the password")
        page.click("#login-submit")
        page.wait_for_selector('.refusal[data-kind="auth"] >> text=password mismatch')
        page.click('.refusal[data-kind="auth"] button:has-text("Enter the secret again")')
        page.fill("#login-secret", PASSWORD)
        page.click("#login-submit")
        wait_connected(page)
        assert page.evaluate("() => window.__openclawControl.conn.hello.auth.method") == "password"


def test_stop_aborts_a_streaming_reply_and_a_seq_gap_is_a_refresh(chrome: Browser, tmp_path: Path, shots: Path) -> None:
    with agent_gateway("ours", tmp_path) as (port, up):
        page: Any = chrome.context().new_page()
        rec = Recorder(page)
        page.goto(f"http://127.0.0.1:{port}/chat#token={AGENT_TOKEN}")
        wait_connected(page)
        page.wait_for_selector("#chat-input")
        up.script(Text(text=" ".join(f"w{i}" for i in range(300)), deltas=150, delay_s=0.05))  # ~7 s of stream
        page.fill("#chat-input", "please stream slowly")
        page.click("#chat-send")
        streaming = page.wait_for_selector(".msg.assistant.streaming[data-deltas]")
        assert page.locator("#chat-abort").is_enabled()
        shot(page, shots, "16-chat-streaming")
        page.click("#chat-abort")
        page.wait_for_selector(".msg.assistant.aborted >> text=stopped", timeout=15_000)
        assert "w299" not in (streaming.text_content() or "")
        assert any('"method":"chat.abort"' in f for f in rec.frames_out)
        assert page.locator("#chat-abort").is_disabled()
        # Events the gateway dropped for a slow client leave a gap in seq: the page refetches and says so.
        page.evaluate(
            "() => { const c = window.__openclawControl.conn;"
            " c._frame({type: 'event', event: 'tick', payload: {ts: Date.now()}, seq: (c.lastSeq || 0) + 4}); }"
        )
        page.wait_for_selector("text=Missed 3 event(s); refreshed.")
        page.wait_for_selector(".msg.assistant.aborted >> text=stopped")  # the refetch keeps the stopped reply
        assert page.locator("#conn-state").get_attribute("data-state") == "connected"
        assert page.locator(".toast.error").count() == 0
        shot(page, shots, "17-chat-aborted")
