"""Agent runs over the WebSocket protocol with a real (scripted) upstream: ours and the published gateway.

``chat.send`` → ``chat`` deltas → final; ``agent`` two-stage with streamed ``agent`` events;
``chat.history`` shows the turn; ``sessions.list`` lists it. The same test runs against the
published gateway when ``OPENCLAW_REFERENCE_BIN`` is set (it is the check that the test is right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from agent_gateways import KINDS, TOKEN, agent_gateway
from gateway_proc import Client, connect_frame, open_ws
from upstream import Text, _split, last_user_text

SCOPES = ["operator.read", "operator.write", "operator.admin", "operator.approvals", "operator.pairing"]


async def _client(nursery: trio.Nursery, port: int) -> Client:
    client = Client(await open_ws(nursery, port))
    challenge = await client.recv()
    assert challenge["event"] == "connect.challenge"
    await client.send(connect_frame(TOKEN, SCOPES))
    while True:
        frame = await client.recv()
        if frame.get("type") == "res":
            assert frame["ok"], frame
            return client
        client.file_frame(frame)


async def _until(client: Client, pred: Any) -> list[dict[str, Any]]:
    """Read (filing everything) until ``pred(frame)``; returns every frame read, in order."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await client.recv()
        seen.append(frame)
        client.file_frame(frame)
        if pred(frame):
            return seen


@pytest.mark.parametrize("kind", KINDS)
def test_chat_send_agent_history_sessions(kind: str, tmp_path: Path) -> None:
    with agent_gateway(kind, tmp_path) as (port, up):

        async def main() -> None:
            with trio.fail_after(90):
                async with trio.open_nursery() as nursery:
                    c = await _client(nursery, port)
                    ack = await c.call("chat.send", {"sessionKey": "main", "message": "hello over ws chat.send", "idempotencyKey": "e2e-chat-1"})
                    assert ack["ok"] and ack["payload"] == {"runId": "e2e-chat-1", "status": "started"}
                    frames = await _until(
                        c, lambda f: f.get("event") == "chat" and f["payload"].get("state") in ("final", "error")
                    )
                    chats = [f["payload"] for f in frames if f.get("event") == "chat" and f["payload"]["runId"] == "e2e-chat-1"]
                    deltas = [p for p in chats if p["state"] == "delta"]
                    final = chats[-1]
                    assert final["state"] == "final", final
                    assert final["sessionKey"] == "agent:main:main"
                    text = final["message"]["content"][0]["text"]
                    assert text.endswith(": hello over ws chat.send") and text.startswith("upstream-reply-")
                    assert len(deltas) >= 2 and deltas[-1]["message"]["content"][0]["text"] == text
                    assert "".join(d["deltaText"] for d in deltas) == text
                    seqs = [p["seq"] for p in chats]
                    assert seqs == sorted(seqs) and seqs[0] >= 1
                    agents = [f["payload"] for f in frames if f.get("event") == "agent" and f["payload"]["runId"] == "e2e-chat-1"]
                    phases = [a["data"].get("phase") for a in agents if a["stream"] == "lifecycle"]
                    assert phases[0] == "start" and phases[-1] == "end"

                    # agent: two-stage, same request id
                    await c.send({"type": "req", "id": "two", "method": "agent", "params": {"message": "second turn", "idempotencyKey": "e2e-agent-1", "sessionKey": "main"}})
                    frames = await _until(c, lambda f: f.get("type") == "res" and f.get("id") == "two")
                    first = frames[-1]
                    assert first["ok"] and first["payload"]["status"] == "accepted" and first["payload"]["runId"] == "e2e-agent-1"
                    frames = await _until(c, lambda f: f.get("type") == "res" and f.get("id") == "two")
                    second = frames[-1]
                    assert second["ok"] and second["payload"]["status"] == "ok", second
                    reply = second["payload"]["result"]["payloads"][0]["text"]
                    assert reply.endswith(": second turn")
                    streamed = [f["payload"] for f in frames if f.get("event") == "agent" and f["payload"]["runId"] == "e2e-agent-1"]
                    assert any(a["stream"] == "assistant" for a in streamed)
                    assert [a["data"]["phase"] for a in streamed if a["stream"] == "lifecycle"][-1] == "end"

                    history = await c.call("chat.history", {"sessionKey": "main", "limit": 20})
                    assert history["ok"], history
                    msgs = history["payload"]["messages"]
                    roles = [m["role"] for m in msgs]
                    assert roles[-4:] == ["user", "assistant", "user", "assistant"]
                    assert msgs[-4]["content"] == "hello over ws chat.send"
                    assert msgs[-1]["content"][0]["text"] == reply

                    listing = await c.call("sessions.list", {})
                    assert listing["ok"], listing
                    keys = [row["key"] for row in listing["payload"]["sessions"]]
                    assert "agent:main:main" in keys
                    nursery.cancel_scope.cancel()

        trio.run(main)
        assert len(up.chat_requests()) >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_held_text_goes_out_while_the_model_pauses(kind: str, tmp_path: Path) -> None:
    """The model sends three deltas at once, then pauses (a stall of 30 s): the text the pace held
    reaches the listener while the upstream is still paused (on a timer), not with its next event.
    ``chat`` deltas stay cumulative and add up to the text, once each."""
    marker = "PAUSE-AFTER-THREE"
    answer = "PacedAlphaBravoCharlieDeltaEchoFoxtrotGolfHotelIndiaJuliet"
    shown = "".join(_split(answer, 4)[:3])
    with agent_gateway(kind, tmp_path) as (port, up):
        up.script_for(marker, Text(text=answer, deltas=4, stall_after=3, stall_s=30.0))

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(40):
                    c = await _client(nursery, port)
                ack = await c.call("chat.send", {"sessionKey": "main", "message": f"say it {marker}", "idempotencyKey": "e2e-pause-1"})
                assert ack["ok"], ack

                def whole(f: dict[str, Any]) -> bool:
                    p = f.get("payload") or {}
                    return f.get("event") == "chat" and p.get("state") == "delta" and p["message"]["content"][0]["text"] == shown

                with trio.fail_after(20):  # well before the stall's end (30 s), which would also send it
                    frames = await _until(c, whole)
                asked = [r for r in up.chat_requests() if isinstance(r.body, dict) and marker in last_user_text(r.body)]
                assert asked and up.outcome(asked[-1].n) is None  # the upstream is still paused
                deltas = [f["payload"] for f in frames if f.get("event") == "chat" and f["payload"].get("runId") == "e2e-pause-1"
                          and f["payload"].get("state") == "delta"]
                assert "".join(d["deltaText"] for d in deltas) == shown  # nothing twice, nothing lost
                assert all(d["message"]["content"][0]["text"] == shown[: len(d["message"]["content"][0]["text"])] for d in deltas)
                nursery.cancel_scope.cancel()

        trio.run(main)
