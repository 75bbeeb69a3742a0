"""``/tools/invoke`` against the recordings (f01–f10) and the hooks gate, payloads and policies."""

from __future__ import annotations

import itertools
import json
from collections.abc import Generator
from typing import Any

import pytest
from recordings import load
from support import CONFIG

from gateway_core.agents.effects import StoreCall
from gateway_core.agents.roster import roster
from gateway_core.agents.store import MemorySessionStore
from gateway_core.openai import hook_actions as H
from gateway_core.openai.hooks import HookGate, HooksConfigError, hooks_config, read_hook_body
from gateway_core.openai.invoke import HTTP_DENY, allowed, invoke, parse_invoke
from gateway_core.openai.wire import Answer, Refused

ROSTER = roster(CONFIG)


def run(gen: Generator[Any, Any, Answer], store: MemorySessionStore) -> tuple[Answer, list[str]]:
    """Drive an effect generator against an in-memory store; returns the answer and the store methods called."""
    calls: list[str] = []
    value: Any = None
    try:
        while True:
            effect = gen.send(value)
            assert isinstance(effect, StoreCall)
            calls.append(effect.method)
            value = getattr(store, effect.method)(*effect.args, **effect.kwargs)
    except StopIteration as stop:
        return stop.value, calls


def store() -> MemorySessionStore:
    ids = (f"sid-{i}" for i in itertools.count())
    s = MemorySessionStore(lambda: next(ids))
    s.ensure("agent:main:main", "main", 1000)
    return s


@pytest.mark.parametrize(
    "name",
    ["f02_tools_invoke_exec_denied", "f03_tools_invoke_missing_name", "f04_tools_invoke_unknown_tool",
     "f07_tools_invoke_agents_list", "f08_tools_invoke_gateway_denied", "f09_tools_invoke_bad_args", "f10_tools_invoke_ls"],
)
def test_invoke_answers_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    answer, _ = run(invoke(parse_invoke(case.body, case.headers), roster=ROSTER, config=CONFIG), store())
    assert (answer.status, answer.body.decode()) == (case.status, case.response_body)


def test_sessions_list_envelope_has_the_recorded_shape() -> None:
    """f01: ``{ok, result:{content:[{type:text, text:<pretty JSON of details>}], details}}``; reads go through StoreCall."""
    case = load("f01_tools_invoke_sessions_list")
    answer, calls = run(invoke(parse_invoke(case.body), roster=ROSTER, config=CONFIG), store())
    body = answer.json()
    recorded = case.json
    assert list(body) == list(recorded) == ["ok", "result"]
    assert list(body["result"]) == list(recorded["result"]) == ["content", "details"]
    text = body["result"]["content"][0]["text"]
    assert json.loads(text) == body["result"]["details"] and text == json.dumps(body["result"]["details"], indent=2)
    assert body["result"]["details"]["count"] == 1 and calls == ["get", "list"]


def test_name_wins_over_tool_and_cron_is_automations() -> None:
    assert parse_invoke(b'{"name":"agents_list","tool":"exec"}').name == "agents_list"
    assert parse_invoke(b'{"tool":"cron"}').name == "automations"
    assert parse_invoke(b"").name == ""
    assert parse_invoke(b'{"idempotencyKey":"k1"}').tool_call_id(5) == "http-direct-operator-k1"
    assert parse_invoke(b"{}").tool_call_id(5) == "http-direct-operator-5"
    with pytest.raises(Refused) as bad:
        parse_invoke(b'{"tool":')
    assert bad.value.answer.json()["error"]["type"] == "invalid_request_error"


def test_http_policy() -> None:
    assert len(HTTP_DENY) == 21
    assert allowed("sessions_list", CONFIG, True)
    assert not allowed("sessions_list", {"gateway": {"tools": {"deny": ["Sessions_List"]}}}, True)
    assert not allowed("exec", {"gateway": {"tools": {"allow": ["exec"]}}}, True)  # not a tool here at all
    assert allowed("agents_list", CONFIG, False)


def test_session_target_errors() -> None:
    def answer(body: bytes) -> dict[str, Any]:
        return run(invoke(parse_invoke(body), roster=ROSTER, config=CONFIG), store())[0].json()

    assert answer(b'{"tool":"session_status","agentId":"ghost"}')["error"]["message"] == 'Unknown agent id "ghost"'
    assert answer(b'{"tool":"session_status","sessionKey":"agent:"}')["error"]["message"] == 'malformed session key "agent:"'
    two = roster({"agents": {"entries": {"main": {"default": True}, "ops": {}}}})
    got = run(invoke(parse_invoke(b'{"tool":"session_status","sessionKey":"agent:ops:x","agentId":"main"}'), roster=two), store())[0]
    assert got.json()["error"]["message"] == 'agent id "main" does not match session agent "ops"'


# --------------------------------------------------------------------------- hooks

HOOKS = {"hooks": {"enabled": True, "token": "hook-secret"}}


def gate_answer(gate: HookGate, *, token: str | None = "hook-secret", path: str = "/hooks/wake", method: str = "POST",
                query: dict[str, str] | None = None, ip: str = "127.0.0.1", now_ms: int = 0) -> Any:
    cfg = hooks_config(HOOKS, ROSTER)
    assert cfg is not None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return gate.admit(cfg, path=path, query=query or {}, method=method, headers=headers, client_ip=ip, now_ms=now_ms)


def test_hooks_config_rules() -> None:
    assert hooks_config({}, ROSTER) is None
    with pytest.raises(HooksConfigError, match="hooks.enabled requires hooks.token"):
        hooks_config({"hooks": {"enabled": True}}, ROSTER)
    with pytest.raises(HooksConfigError, match="may not be '/'"):
        hooks_config({"hooks": {"enabled": True, "token": "t", "path": "/"}}, ROSTER)
    cfg = hooks_config({"hooks": {"enabled": True, "token": "t", "path": "in/"}}, ROSTER)
    assert cfg is not None and cfg.base_path == "/in"
    with pytest.raises(HooksConfigError, match="must include 'hook:'"):
        hooks_config({"hooks": {"enabled": True, "token": "t", "allowedSessionKeyPrefixes": ["x:"]}}, ROSTER)


def test_gate_order_and_texts() -> None:
    gate = HookGate()
    assert gate_answer(gate, path="/other") is None
    q = gate_answer(gate, query={"token": "hook-secret"}, method="GET")
    assert (q.status, q.body) == (400, b"Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).")
    assert gate_answer(gate, method="GET").status == 405
    assert gate_answer(gate, token="gateway-token").body == b"Unauthorized"
    assert gate_answer(gate, path="/hooks").status == 404
    assert gate_answer(gate) == "wake"
    cfg = hooks_config(HOOKS, ROSTER)
    assert cfg is not None
    assert gate.admit(cfg, path="/hooks/agent", query={}, method="POST", headers={"x-openclaw-token": "hook-secret"},
                      client_ip="10.0.0.1", now_ms=0) == "agent"


def test_limiter_20_failures_then_60s_lockout_loopback_included() -> None:
    gate = HookGate()
    for i in range(20):
        assert gate_answer(gate, token="wrong", now_ms=i).status == 401
    locked = gate_answer(gate, token="wrong", now_ms=100)
    assert locked.status == 429 and dict(locked.headers)["Retry-After"] == "60" and locked.body == b"Too Many Requests"
    assert gate_answer(gate, token="wrong", ip="10.0.0.9", now_ms=100).status == 401  # per client
    assert gate_answer(gate, token="wrong", now_ms=60_019).status == 401  # lockout over
    assert gate_answer(gate, now_ms=60_020) == "wake"  # success resets


def test_hook_body() -> None:
    assert read_hook_body(b"") == {}
    bad = read_hook_body(b'{"text":')
    assert isinstance(bad, Answer) and bad.json() == {"ok": False, "error": "Unexpected end of JSON input"}


def test_wake_payloads() -> None:
    cfg = hooks_config(HOOKS, ROSTER)
    assert cfg is not None
    assert H.wake(cfg, {}).json() == {"ok": False, "error": "text required"}
    ok = H.wake(cfg, {"text": " hi ", "mode": "next-heartbeat"})
    assert isinstance(ok, H.Wake) and (ok.text, ok.mode, ok.agent_id) == ("hi", "next-heartbeat", "main")
    assert H.wake(cfg, {"text": "x", "mode": "next-heartbeat", "sessionKey": "k"}).json()["error"] == "sessionKey requires mode=now"
    assert "allowRequestSessionKey" in H.wake(cfg, {"text": "x", "sessionKey": "k"}).json()["error"]
    assert H.wake_answer("now", "queued").json() == {"ok": True, "mode": "now", "eventOutcome": "queued"}


def test_agent_payloads_sessions_and_delivery() -> None:
    cfg = hooks_config(HOOKS, ROSTER)
    assert cfg is not None

    def error(payload: dict[str, Any], **kw: Any) -> str:
        got = H.agent(cfg, payload, {}, fresh_id="u1", **kw)
        assert isinstance(got, Answer) and got.status == 400
        return got.json()["error"]

    assert error({"message": "m", "waitForCompletion": "yes"}) == "waitForCompletion must be boolean"
    assert error({}) == "message required"
    assert error({"message": "m", "agentId": "ghost"}) == 'unknown agentId "ghost"'
    assert error({"message": "m", "sessionMode": "persistent"}) == "sessionKey is required when sessionMode is persistent"
    assert error({"message": "m", "channel": "telegram"}, channels=("telegram",)) == "channel and to must be set together for hook delivery"
    assert error({"message": "m", "channel": "last", "to": "x"}) == "channel must name a concrete channel for hook delivery"
    assert error({"message": "m", "channel": "fax", "to": "x"}, channels=("telegram",)) == "channel must be last|telegram"
    run_ = H.agent(cfg, {"message": "m"}, {"idempotency-key": " k "}, fresh_id="u1")
    assert isinstance(run_, H.AgentRun)
    assert (run_.session_key, run_.name, run_.deliver, run_.delivery, run_.idempotency_key) == ("hook:u1", "Hook", True, {"mode": "none"}, "k")
    sent = H.agent(cfg, {"message": "m", "channel": "telegram", "to": "42"}, {}, fresh_id="u", channels=("telegram",))
    assert isinstance(sent, H.AgentRun) and sent.delivery == {"mode": "announce", "channel": "telegram", "to": "42"}
    assert H.agent_answer("r1").json() == {"ok": True, "runId": "r1"}
    strict = hooks_config({"hooks": {**HOOKS["hooks"], "allowRequestSessionKey": True, "allowedSessionKeyPrefixes": ["hook:"]}}, ROSTER)
    assert strict is not None
    assert H.agent(strict, {"message": "m", "sessionKey": "other"}, {}, fresh_id="u").json()["error"] == "sessionKey must start with one of: hook:"
    persistent = H.agent(strict, {"message": "m", "sessionKey": "hook:a", "sessionMode": "persistent"}, {}, fresh_id="u")
    assert isinstance(persistent, H.AgentRun) and persistent.session_mode == "persistent"
    limited = hooks_config({"hooks": {**HOOKS["hooks"], "allowedAgentIds": []}}, ROSTER)
    assert limited is not None
    assert H.agent(limited, {"message": "m"}, {}, fresh_id="u").json()["error"] == "agentId is not allowed by hooks.allowedAgentIds"


def test_mappings_and_templates() -> None:
    cfg = hooks_config({"hooks": {**HOOKS["hooks"], "mappings": [
        {"match": {"path": "/gh/", "source": "github"}, "messageTemplate": "{{payload.action}} by {{sender.login}}"},
        {"match": {"path": "gh"}, "action": "wake", "forEach": "items"}]}}, ROSTER)
    assert cfg is not None
    first = H.match(cfg, "gh", {"source": "github"})
    assert first is not None and first.id == "mapping-0"
    second = H.match(cfg, "gh/", {"source": "other"})
    assert second is not None and second.action == "wake"
    assert H.match(cfg, "nope", {}) is None
    text = H.render(first.message_template, payload={"action": "opened", "sender": {"login": "ann"}}, headers={}, query={}, path="gh", now_iso="")
    assert text == "opened by ann"
    assert H.render("{{headers.x-event}}|{{query.k}}|{{a[1].b}}|{{o}}|{{missing}}|{{path}}",
                    payload={"a": [{}, {"b": 2}], "o": {"z": True}}, headers={"x-event": "push"}, query={"k": "v"},
                    path="gh", now_iso="") == 'push|v|2|{"z":true}||gh'
    assert H.fan_out(second, {"items": [1, 2], "k": 0}) == [{"items": [1], "k": 0}, {"items": [2], "k": 0}]
    assert H.fan_out(second, {"items": "x"}) == []


def test_replay_cache_bounds() -> None:
    cache = H.ReplayCache()
    key = H.ReplayCache.key("tok", "agent", {"message": "m"}, "idem")
    assert key is not None and H.ReplayCache.key("tok", "agent", {}, None) is None
    cache.admitted(key, "run-1", 0)
    assert cache.get(key, 10_000_000) == "run-1"  # active entries never expire
    cache.settled(key, 1_000)
    assert cache.get(key, 1_000 + H.REPLAY_TTL_MS) == "run-1"
    assert cache.get(key, 1_001 + H.REPLAY_TTL_MS) is None
    for i in range(H.REPLAY_MAX + 5):
        cache.admitted(f"k{i}", f"r{i}", 0)
        cache.settled(f"k{i}", 0)
    assert len(cache) == H.REPLAY_MAX and cache.get("k0", 0) is None and cache.get(f"k{H.REPLAY_MAX + 4}", 0) is not None
