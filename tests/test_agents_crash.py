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

import trio
from agent_gateways import TOKEN, observed_config
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
