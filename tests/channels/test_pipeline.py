"""The inbound pipeline in memory: policy → pairing → commands → routing → the agent → the outbox.

Runs the real pipeline job and the real agent loop (offline echo model, in-memory sessions, virtual
time) with a real channel store in a temporary directory; no sockets, no sleeping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim import ChannelSim

from gateway_core.agents.loop import TurnResult
from gateway_core.channels import pipeline
from gateway_core.channels.inbound import Inbound, encode_inbound
from gateway_core.channels.rules import TelegramRules

TG = {"channels": {"telegram": {"botToken": "1:x", "groups": {"-100": {}}}}}
_ids = iter(range(1, 10_000))


def dm(text: str, sender: str = "42") -> Inbound:
    return Inbound(channel="telegram", account_id="default", event_id=str(next(_ids)), chat_type="direct", peer_id=sender,
                   sender_id=sender, sender_name="Ada", sender_username="ada", text=text, reply_target=sender)


def grp(text: str, mentioned: bool) -> Inbound:
    return Inbound(channel="telegram", account_id="default", event_id=str(next(_ids)), chat_type="group", peer_id="-100",
                   sender_id="42", text=text, mentioned=mentioned, reply_target="-100")


@pytest.fixture
def sim(tmp_path: Path) -> ChannelSim:
    host = ChannelSim(tmp_path, TG)
    yield host
    host.close()


def test_pairing_then_approved_reply(sim: ChannelSim) -> None:
    first = dm("hello bot")
    sim.inbound(first)
    (item,) = sim.outbox()
    assert item["kind"] == "pairing" and item["target"] == "42" and "<pre><code>" in item["text"]
    code = sim.channel_store.pairing_pending("telegram")[0].code
    assert code in item["text"] and sim.ingress() == [(first.key, "done", "pairing")]
    sim.inbound(dm("second while pending"))
    assert len(sim.outbox()) == 1 and sim.store.get("agent:main:main") is None  # nothing else queued, nothing ran
    assert sim.channel_store.pairing_approve_code("telegram", code).id == "42"
    third = dm("now paired")
    sim.inbound(third)
    sim.advance_to(sim.now + 5)
    replies = [o for o in sim.outbox() if o["kind"] == "reply"]
    assert replies and replies[0]["text"].startswith('You said: "now paired"'), replies
    assert sim.ingress()[-1] == (third.key, "done", "ok")
    record = sim.store.get("agent:main:main")
    assert record.last_route == {"channel": "telegram", "to": "42", "accountId": "default"}
    assert sim.typing and sim.typing[0].target == "42" and third.key in sim.adopted


def test_allowlisted_dm_queues_in_the_session_lane_in_order(sim: ChannelSim) -> None:
    sim.set_config({"channels": {"telegram": {"botToken": "1:x", "dmPolicy": "allowlist", "allowFrom": ["42"]}}})
    a, b = dm("first message"), dm("second message")
    rows = sim.channel_store.ingress_put([a, b])
    for row in rows:
        sim.app.spawn(pipeline.inbound_job(sim.app, row, sim.now, sim.wall_ms))
    sim.pump()
    sim.advance_to(sim.now + 10)
    replies = [o["text"] for o in sim.outbox() if o["kind"] == "reply"]
    assert len(replies) == 2 and "first message" in replies[0] and "second message" in replies[1]
    history = sim.store.messages(sim.store.get("agent:main:main").session_id, limit=10)
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]


def test_commands_new_and_status(sim: ChannelSim) -> None:
    sim.set_config({"channels": {"telegram": {"botToken": "1:x", "allowFrom": ["42"]}}})
    sim.inbound(dm("hello"))
    sim.advance_to(sim.now + 5)
    assert sim.store.get("agent:main:main").message_count == 2
    sim.inbound(dm("/status"))
    status = sim.outbox()[-1]
    assert status["kind"] == "command" and "Session: agent:main:main" in status["text"] and "Messages: 2" in status["text"]
    sim.inbound(dm("/new"))
    assert sim.outbox()[-1]["text"] == "\u2705 New session started." and sim.store.get("agent:main:main").message_count == 0
    sim.inbound(dm("/reset and then this"))
    sim.advance_to(sim.now + 5)
    kinds = [o["kind"] for o in sim.outbox()[-2:]]
    assert kinds == ["command", "reply"] and "and then this" in sim.outbox()[-1]["text"]


def test_groups_mention_gating_and_unrouted_fleet(sim: ChannelSim) -> None:
    sim.inbound(grp("chatter", mentioned=False))
    assert sim.outbox() == [] and sim.ingress()[-1][2] == "skipped"
    sim.inbound(grp("@oc_bot question", mentioned=True))
    sim.advance_to(sim.now + 5)
    assert sim.outbox()[-1]["target"] == "-100" and sim.store.get("agent:main:telegram:group:-100") is not None
    sim.set_config({**TG, "agents": {"entries": {"ops": {}, "support": {}}}})
    sim.inbound(grp("@oc_bot who answers?", mentioned=True))
    assert sim.ingress()[-1][2] == "unrouted" and len(sim.outbox()) == 1


def test_replay_after_a_finished_turn_does_not_run_the_agent_again(sim: ChannelSim) -> None:
    """A crash after the turn was stored but before the outbox got its reply: the replay finds it."""
    sim.set_config({"channels": {"telegram": {"botToken": "1:x", "allowFrom": ["42"]}}})
    msg = dm("remember me")
    (row,) = sim.channel_store.ingress_put([msg])
    sim.run_row(row)
    sim.advance_to(sim.now + 5)
    first_reply = [o for o in sim.outbox() if o["kind"] == "reply"]
    # simulate the crash window: the row is pending again, and its reply never reached the outbox
    sim.channel_store._q.execute("UPDATE ingress SET status = 'pending', payload = ? WHERE key = ?", (encode_inbound(msg), msg.key))
    sim.channel_store._q.execute("DELETE FROM outbox")
    count = sim.store.get("agent:main:main").message_count
    (replayed,) = sim.channel_store.pending_ingress()
    assert replayed.attempts == 1
    sim.run_row(replayed)
    sim.advance_to(sim.now + 5)
    assert sim.ingress()[-1][2] == "replayed" and sim.store.get("agent:main:main").message_count == count
    assert [o["text"] for o in sim.outbox()] == [o["text"] for o in first_reply]


def test_reply_items_suppress_no_reply_and_apologise_for_errors() -> None:
    msg = dm("x")
    rules = TelegramRules()
    assert pipeline._reply_items(msg, rules, {}, TurnResult(status="ok", text="NO_REPLY", silent=True), "r") == []
    (item,) = pipeline._reply_items(msg, rules, {}, TurnResult(status="error", error="boom"), "r")
    assert item.text == pipeline.AGENT_FAILED
    assert pipeline._reply_items(msg, rules, {}, TurnResult(status="aborted"), "r") == []
    assert pipeline.is_channel_run(pipeline.channel_run_id(msg.key)) and not pipeline.is_channel_run("e2e-agent-1")


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("plain", "off", ("plain", [None, None])),
        ("plain", "first", ("plain", ["7", None])),
        ("plain", "all", ("plain", ["7", "7"])),
        ("[[reply_to_current]] tagged", "off", ("tagged", ["7", None])),
        ("see [[ reply_to: 99 ]] this", "off", ("see  this", ["99", None])),
        ("[[reply_to:99]] all", "all", ("all", ["99", "99"])),
    ],
)
def test_reply_threading_rules(text: str, mode: str, expected: tuple[str, list[str | None]]) -> None:
    msg = Inbound(channel="telegram", account_id="default", event_id="1", chat_type="direct", peer_id="42",
                  sender_id="42", text="hi", reply_target="42", message_id="7")
    assert pipeline.reply_threading(text, msg, mode) == expected


def test_reply_to_mode_first_threads_the_reply_to_the_triggering_message(sim: ChannelSim) -> None:
    sim.set_config({"channels": {"telegram": {"botToken": "1:x", "allowFrom": ["42"], "replyToMode": "first"}}})
    msg = Inbound(channel="telegram", account_id="default", event_id=str(next(_ids)), chat_type="direct", peer_id="42",
                  sender_id="42", text="thread me", reply_target="42", message_id="555")
    sim.inbound(msg)
    sim.advance_to(sim.now + 5)
    replies = [o for o in sim.outbox() if o["kind"] == "reply"]
    assert replies and replies[0]["reply_to"] == "555", replies
