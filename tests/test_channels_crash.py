"""Nothing lost, nothing twice: SIGKILL with 20 replies queued and 20 inbound messages accepted but
not answered; after a restart all 40 are handled exactly once.

Set-up (Telegram, our gateway): 20 DMs are answered at once, but ``sendMessage`` keeps answering
``429 retry_after`` so their replies wait in the durable outbox; 20 more DMs are accepted (their
updates confirmed to Telegram through the offset) while the model hangs, so they wait in the
durable ingress queue with their turns unfinished. The test kills the gateway's process group when
the queue file shows exactly that (20 pending replies, none mid-attempt; 20 pending inbound rows),
lets the API and the model behave, restarts the gateway on the same state and waits for 40 replies.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from agent_gateways import observed_config
from botapi import BotApi, Fault
from gateway_proc import GatewayProcess, free_port, make_home
from upstream import Hang, ScriptedUpstream, last_user_text

KEY = "sk-upstream-test-key"
USER = 4242
N = 20


def _counts(state: Path) -> tuple[dict[str, int], dict[str, int]]:
    path = state / "channels" / "queues.sqlite"
    if not path.exists():
        return {}, {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        ingress = dict(db.execute("SELECT status, count(*) FROM ingress GROUP BY status").fetchall())
        outbox = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    except sqlite3.OperationalError:
        return {}, {}
    finally:
        db.close()
    return ingress, outbox


def _wait(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_with_queued_inbound_and_outbound(tmp_path: Path) -> None:
    with ScriptedUpstream(api_key=KEY) as up, BotApi() as api:
        hanging = [True]
        up.behaviour = lambda rec: Hang(120) if hanging[0] and "B-" in last_user_text(rec.body if isinstance(rec.body, dict) else {}) else None
        throttled = [True]
        api.on_send = lambda body: Fault(429, "Too Many Requests: retry after 5", retry_after=5) if throttled[0] else None
        port = free_port()
        cfg = observed_config(port, up.base_url)
        cfg["channels"] = {"telegram": {"botToken": api.token, "apiRoot": api.api_root, "dmPolicy": "allowlist", "allowFrom": [str(USER)]}}
        cfg["session"] = {"dmScope": "per-peer"}
        home = make_home(tmp_path, cfg)
        state = home / ".openclaw"
        gw = GatewayProcess(tmp_path, home, name="gw1").start()
        try:
            gw.wait_ready(port, timeout=30)
            assert api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= 2, 30), gw.output()
            for i in range(N):
                api.dm(USER, f"A-{i:02d}")
            _wait(lambda: _counts(state)[1].get("pending", 0) + _counts(state)[1].get("sending", 0) == N, 60, "20 queued replies")
            last = 0
            for i in range(N):
                last = api.dm(USER, f"B-{i:02d}")
            _wait(lambda: api.confirmed > last, 60, "the B updates to be confirmed")  # offset advanced past them
            _wait(lambda: any("B-00" in last_user_text(r.body) for r in up.chat_requests()), 60, "the first B turn")

            def ready() -> bool:
                ingress, outbox = _counts(state)
                return ingress.get("pending") == N and outbox.get("pending") == N and not outbox.get("sending")

            _wait(ready, 60, "20 pending inbound rows and 20 idle pending replies")
            os.killpg(gw.pid, signal.SIGKILL)
            gw.proc.wait(timeout=10)
        finally:
            gw.kill()
        assert not api.sent(), "a reply got through before the kill"
        ingress, outbox = _counts(state)
        assert ingress.get("pending") == N and outbox.get("pending") == N, (ingress, outbox)

        throttled[0] = False
        hanging[0] = False
        with GatewayProcess(tmp_path, home, name="gw2") as gw2:
            gw2.wait_ready(port, timeout=30)

            def all_delivered(a: BotApi) -> bool:
                texts = [b["text"] for b in a.sent(USER)]
                return all(any(t.endswith(f": {p}-{i:02d}") for t in texts) for p in "AB" for i in range(N))

            assert api.wait_for(all_delivered, 120), (len(api.sent()), gw2.output())
            time.sleep(1.0)  # anything extra would arrive now
            texts = [b["text"] for b in api.sent(USER)]
            for prefix in "AB":
                for i in range(N):
                    assert sum(t.endswith(f": {prefix}-{i:02d}") for t in texts) == 1, (prefix, i, texts)
            assert len(texts) == 2 * N, texts
            ingress, outbox = _counts(state)
            assert not ingress.get("pending") and outbox.get("sent") == 2 * N and not outbox.get("unknown"), (ingress, outbox)
