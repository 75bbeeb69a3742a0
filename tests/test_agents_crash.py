"""SIGKILL during a streamed run: after a restart the store is consistent and the session usable.

The upstream streams slowly (LONGSTREAM); the gateway is killed after the first delta. The turn was
never half-written (a turn is one transaction), the interrupted run is found at the next start,
its input reaches the next turn as context, and the SQLite file passes ``integrity_check``.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import trio
from agent_gateways import TOKEN, observed_config, running_gateway
from gateway_proc import Client, GatewayProcess, connect_frame, free_port, make_home, open_ws
from upstream import ScriptedUpstream, Text

SCOPES = ["operator.read", "operator.write", "operator.admin"]


async def _client(nursery: trio.Nursery, port: int) -> Client:
    client = Client(await open_ws(nursery, port))
    await client.recv()
    await client.send(connect_frame(TOKEN, SCOPES))
    while True:
        frame = await client.recv()
        if frame.get("type") == "res":
            assert frame["ok"], frame
            return client


async def _until(client: Client, pred: Any) -> dict[str, Any]:
    while True:
        frame = await client.recv()
        if pred(frame):
            return frame


def test_sigkill_mid_stream_then_restart(tmp_path: Path) -> None:
    with ScriptedUpstream(api_key="sk-upstream-test-key") as up:
        port = free_port()
        home = make_home(tmp_path, observed_config(port, up.base_url))
        up.script(Text(text="slow words " * 40, deltas=40, delay_s=0.25))
        gw = GatewayProcess(tmp_path, home).start()
        try:
            gw.wait_ready(port, timeout=20)

            async def first() -> None:
                with trio.fail_after(30):
                    async with trio.open_nursery() as nursery:
                        c = await _client(nursery, port)
                        await c.call("chat.send", {"sessionKey": "main", "message": "lost in the crash", "idempotencyKey": "crash-1"})
                        await _until(c, lambda f: f.get("event") == "chat" and f["payload"].get("state") == "delta")
                        gw.send_signal(signal.SIGKILL)
                        nursery.cancel_scope.cancel()

            trio.run(first)
            gw.wait(10)
        finally:
            gw.kill()

        db = home / ".openclaw" / "agents" / "sessions.sqlite"
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0  # no half turn
        assert conn.execute("SELECT status, input FROM runs").fetchall() == [("running", "lost in the crash")]
        conn.close()

        with GatewayProcess(tmp_path, home, name="gw2") as again:
            again.wait_ready(port, timeout=20)

            async def second() -> None:
                with trio.fail_after(30):
                    async with trio.open_nursery() as nursery:
                        c = await _client(nursery, port)
                        await c.call("chat.send", {"sessionKey": "main", "message": "after the restart", "idempotencyKey": "crash-2"})
                        final = await _until(
                            c, lambda f: f.get("event") == "chat" and f["payload"].get("state") in ("final", "error")
                        )
                        assert final["payload"]["state"] == "final", final
                        history = await c.call("chat.history", {"sessionKey": "main"})
                        roles = [m["role"] for m in history["payload"]["messages"]]
                        assert roles == ["user", "assistant"]
                        nursery.cancel_scope.cancel()

            trio.run(second)
        sent = up.chat_requests()[-1].body["messages"]
        last_user = [m for m in sent if m["role"] == "user"][-1]["content"]
        assert "lost in the crash" in last_user and last_user.endswith("after the restart")
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT status FROM runs WHERE run_id = 'crash-1'").fetchone()[0] == "interrupted"
        conn.close()


def test_answered_chat_turns_survive_sigkill(tmp_path: Path) -> None:
    """Group commit never acknowledges before the commit: every chat answer that reached its client
    is in the store after a SIGKILL right behind the last answer (16 concurrent clients)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_gateway("ours", tmp_path) as gw:

        async def main() -> None:
            async with httpx.AsyncClient(base_url=gw.url, headers=auth, timeout=60) as http:
                async def ask(i: int) -> None:
                    for turn in range(3):
                        done = await http.post("/v1/chat/completions", json={
                            "model": "openclaw", "user": f"durable-{i}",
                            "messages": [{"role": "user", "content": f"c{i} t{turn}"}]})
                        assert done.status_code == 200, done.text

                async with trio.open_nursery() as nursery:
                    for i in range(16):
                        nursery.start_soon(ask, i)

        trio.run(main)
        assert gw.process is not None
        gw.process.kill()  # SIGKILL to the group, at once: no shutdown, no flush
        gw.process = None
        gw.start()
        for i in range(16):
            page = httpx.get(f"{gw.url}/sessions/agent:main:openai-user:durable-{i}/history", headers=auth, timeout=30)
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            assert [m["role"] for m in items] == ["user", "assistant"] * 3
            assert [m["content"] for m in items[::2]] == [f"c{i} t{t}" for t in range(3)]
