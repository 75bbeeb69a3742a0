"""A2A, the pure side (what the HTTP route will call), checked against a recording of the published
gateway (tests/data/a2a_reference_2026.9.6.jsonl): the card, auth, JSON-RPC errors with their
published wording, tasks, slash-command rejection, rate limits, bounds.

The exchange runs the real agent loop in the simulator (offline echo, virtual time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sim import ChannelSim

from gateway_core.agents import roster as R
from gateway_core.channels import a2a

RECORDING = Path(__file__).resolve().parents[1] / "data" / "a2a_reference_2026.9.6.jsonl"
REC = {r["name"]: r for r in (json.loads(line) for line in RECORDING.read_text().splitlines()) if "name" in r}
CONFIG = {"channels": {"a2a": {"enabled": True, "rateLimitPerMinute": 0,
                               "peers": {"hermes": {"token": "hermes-token-0123456789"}, "zeus": {"token": "zeus-token-0123456789"}}}}}


@pytest.fixture
def sim(tmp_path: Path) -> ChannelSim:
    host = ChannelSim(tmp_path, CONFIG)
    yield host
    host.close()


def ids() -> Any:
    return (f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 10_000))


def call(sim: ChannelSim, server: a2a.A2AServer, peer: str, body: Any, cfg: a2a.A2AConfig | None = None, until: float = 60.0) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return sim.run(a2a.exchange(_ctx(sim), server, cfg or a2a.a2a_config(sim.app.config), peer, raw, ids()), until=until)


def _ctx(sim: ChannelSim) -> Any:
    from gateway_core.app import Ctx

    return Ctx(sim.app, None, "a2a", "a2a", sim.now, sim.wall_ms)


def test_card_and_http_bodies_as_published() -> None:
    card = REC["card"]["body"]
    origin = card["supportedInterfaces"][0]["url"].removesuffix("/a2a/v1")
    assert a2a.agent_card(a2a.a2a_config(CONFIG), R.roster({}), "2026.9.6", origin) == card
    assert REC["card-alias"]["body"] == card and set(a2a.CARD_PATHS) == {"/.well-known/agent-card.json", "/.well-known/agent.json"}
    assert a2a.UNAUTHORIZED_BODY == REC["noauth"]["body"] == REC["badauth"]["body"]
    assert REC["get-method"]["body"] == a2a.NOT_FOUND_BODY and REC["big"]["body"] == a2a.TOO_LARGE_BODY
    exposed = a2a.a2a_config({"channels": {"a2a": {"exposeAgents": ["ops"]}}})
    fleet = R.roster({"agents": {"entries": {"ops": {}, "main": {}}}})
    assert [s["id"] for s in a2a.agent_card(exposed, fleet, "v", "https://x")["skills"]] == ["ops"]


def test_authentication() -> None:
    cfg = a2a.a2a_config(CONFIG)
    assert a2a.authenticate(cfg, "Bearer zeus-token-0123456789") == "zeus"
    assert a2a.authenticate(cfg, "bearer hermes-token-0123456789") == "hermes"
    for header in (None, "", "Bearer nope", "Basic zeus-token-0123456789", "Bearer "):
        assert a2a.authenticate(cfg, header) is None
    cfg = a2a.a2a_config({"channels": {"a2a": {"peers": {"Bad Name": {"token": "t"}, "ok": {"token": "${TOK}"}}}}}, {"ok": "resolved"})
    assert [p.name for p in cfg.peers] == ["ok"] and a2a.authenticate(cfg, "Bearer resolved") == "ok"


@pytest.mark.parametrize("name", ["parse", "invalid-req", "unknown-method", "get-missing", "get-badparams", "cancel",
                                  "send-badctx", "send-noparts", "batch-empty"])
def test_errors_as_published(sim: ChannelSim, name: str) -> None:
    request = REC[name]["request"]
    body = request["raw"].encode() if "raw" in request else request["body"]
    assert call(sim, a2a.A2AServer(), request["auth"], body) == REC[name]["body"]


def test_send_get_isolation_and_batch(sim: ChannelSim) -> None:
    server = a2a.A2AServer()
    sent = call(sim, server, "zeus", REC["send"]["request"]["body"])
    task = sent["result"]["task"]
    recorded = REC["send"]["body"]["result"]["task"]
    assert set(task) == set(recorded) and task["status"]["state"] == "TASK_STATE_COMPLETED" and task["history"] == []
    assert task["contextId"].startswith("ctx-") and task["artifacts"][0]["parts"][0]["text"].startswith('You said: "hello from hermes"')
    got = call(sim, server, "zeus", {"jsonrpc": "2.0", "id": "g1", "method": "GetTask", "params": {"id": task["id"]}})
    assert got == {"jsonrpc": "2.0", "id": "g1", "result": task}
    other = call(sim, server, "hermes", {"jsonrpc": "2.0", "id": "g2", "method": "tasks/get", "params": {"id": task["id"]}})
    assert other == REC["get-otherpeer"]["body"]
    batch = call(sim, server, "zeus", [{"jsonrpc": "2.0", "id": "b1", "method": "GetTask", "params": {"id": task["id"]}},
                                       {"jsonrpc": "2.0", "id": "b2", "method": "Nope"}])
    assert batch == [{"jsonrpc": "2.0", "id": "b1", "result": task}, REC["batch"]["body"][1]]
    assert call(sim, server, "zeus", {"jsonrpc": "2.0", "method": "GetTask", "params": {"id": task["id"]}}) is None  # notification
    key = a2a.session_key("main", "zeus", task["contextId"])
    assert key == f"agent:main:a2a:default:direct:zeus:{task['contextId']}" and sim.store.get(key) is not None


def test_slash_commands_are_rejected(sim: ChannelSim) -> None:
    got = call(sim, a2a.A2AServer(), "zeus", REC["send-slash"]["request"]["body"])
    recorded = REC["send-slash"]["body"]["result"]["task"]
    task = got["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_REJECTED" and task["artifacts"] == []
    assert task["status"]["message"]["parts"] == recorded["status"]["message"]["parts"]
    assert task["status"]["message"]["role"] == "ROLE_AGENT" and task["status"]["message"]["contextId"] == task["contextId"]


def test_return_immediately_then_poll(sim: ChannelSim) -> None:
    server = a2a.A2AServer()
    cfg = a2a.a2a_config(sim.app.config)
    gen = a2a.exchange(_ctx(sim), server, cfg, "zeus", json.dumps(REC["send-immediate"]["request"]["body"]).encode(), ids())
    first = sim.run(gen, until=0.0)
    task = first["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_WORKING" and task["contextId"] == "ctx.one" and task["artifacts"] == []
    sim.advance_to(sim.now + 5)
    later = call(sim, server, "zeus", {"jsonrpc": "2.0", "id": "p", "method": "GetTask", "params": {"id": task["id"]}})
    done = later["result"]
    assert done["status"]["state"] == "TASK_STATE_COMPLETED" and '{"a":1}' in done["artifacts"][0]["parts"][0]["text"]


def test_rate_limit_per_peer_sliding_window(sim: ChannelSim) -> None:
    server = a2a.A2AServer()
    cfg = a2a.a2a_config({"channels": {"a2a": {**CONFIG["channels"]["a2a"], "rateLimitPerMinute": 5}}})
    get = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
    assert call(sim, server, "hermes", b"{nope", cfg, until=0)["error"]["code"] == a2a.PARSE_ERROR  # not counted
    answers = [call(sim, server, "hermes", get, cfg, until=1)["error"]["code"] for _ in range(6)]
    assert answers == [a2a.TASK_NOT_FOUND] * 5 + [a2a.SERVER_ERROR]
    assert call(sim, server, "hermes", get, cfg, until=0)["error"]["message"] == "Peer is rate limited"
    assert call(sim, server, "zeus", get, cfg, until=0)["error"]["code"] == a2a.TASK_NOT_FOUND  # per peer
    sim.advance_to(sim.now + 61)
    assert call(sim, server, "hermes", get, cfg)["error"]["code"] == a2a.TASK_NOT_FOUND


def test_bounds() -> None:
    assert a2a.parse_body(json.dumps([{}] * 31).encode()).error["error"]["code"] == a2a.INVALID_REQUEST
    text = a2a.extract_text([{"text": "x" * (70 * 1024)}])
    assert len(text.encode()) <= a2a.MAX_TEXT and text.endswith(a2a.TRUNCATED)
    assert a2a.extract_text([{"file": {"uri": "https://x"}}]) is None and a2a.extract_text("nope") is None
    store = a2a.TaskStore()
    for i in range(a2a.MAX_TASKS + 10):
        store.add(a2a.Task(id=f"t{i}", context_id="c", peer="p", state=a2a.COMPLETED if i % 2 else a2a.WORKING, timestamp_ms=i), i)
    assert len(store) == a2a.MAX_TASKS and store.get("p", "t0") is not None  # working tasks are never dropped
    store.prune(a2a.TASK_TTL_MS + 10_000)
    assert all(t.state == a2a.WORKING for t in store._tasks.values())
    cfg = a2a.a2a_config({"channels": {"a2a": {"replyTimeoutMs": 1, "rateLimitPerMinute": -3}}})
    assert cfg.reply_timeout_ms == 5000 and cfg.rate_limit_per_minute == 0
