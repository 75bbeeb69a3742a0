"""``/hooks/*`` on a real gateway, ours and the published one (http-agents-channels.md §1.8).

One gateway per kind for the module (tests/agent_gateways.py: the §0.1 config with a scripted
upstream) with hooks on: the gate (query token, method, token via ``Authorization: Bearer`` or
``X-OpenClaw-Token``, the base path), the body (bad JSON, 413), ``wake`` and ``agent`` payload
errors, an agent hook that runs a turn and answers its ``completion`` with ``waitForCompletion``,
idempotent replays, mappings (template, wake, nothing to do, no mapping) and the failed-token
limiter (20 failures, then 429; loopback is not exempt). A behaviour is right only if the
published gateway passes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agent_gateways import KINDS
from gateway_proc import has_ipv6_loopback
from test_http_tools_invoke import HttpGateway, started
from upstream import last_user_text

HOOK_TOKEN = "hook-secret-0123456789"
GATEWAY_TOKEN = "agents-e2e-token-0123456789"
HOOKS = {
    "enabled": True,
    "token": HOOK_TOKEN,
    "allowRequestSessionKey": True,
    "allowedSessionKeyPrefixes": ["hook:"],
    "mappings": [
        {"match": {"path": "gh"}, "action": "agent", "name": "GH", "messageTemplate": "Issue {{payload.issue.title}} opened",
         "deliver": False},
        {"match": {"path": "ping"}, "action": "wake", "textTemplate": "{{payload.note}}", "wakeMode": "next-heartbeat"},
        {"match": {"path": "say"}, "action": "agent", "messageTemplate": "{{payload.text}}", "sessionKey": "hook:say-{{payload.id}}",
         "deliver": False},
    ],
}
#: A configured channel, so that ``channel``/``to`` can name one (A2A takes no hook deliveries).
A2A = {"a2a": {"enabled": True, "peers": {"hermes": {"token": "hermes-token-0123456789"}}}}
TOKEN_IN_QUERY = (
    "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header "
    "(query parameters are not allowed)."
)
TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


class Hooks(HttpGateway):
    """One gateway's hook surface."""

    def post(self, path: str, body: Any = None, *, token: str | None = HOOK_TOKEN, bearer: bool = False,  # type: ignore[override]
             headers: dict[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
        """The hook token in ``X-OpenClaw-Token`` (or, with ``bearer``, in ``Authorization``)."""
        sent = dict(headers or {})
        if token is not None and not bearer:
            sent["X-OpenClaw-Token"] = token
        if content is None and body is None:
            content = b""
        return super().post(path, body, secret=token if bearer else None, content=content, headers=sent)

    def prompts(self) -> list[str]:
        return [last_user_text(r.body) for r in self.upstream.chat_requests()]


@pytest.fixture(scope="module", params=KINDS)
def hooks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    yield from started(Hooks, request.param, tmp_path_factory.mktemp(f"hooks-{request.param}"), hooks=HOOKS, channels=A2A)


def _plain(r: httpx.Response, status: int, text: str) -> None:
    assert (r.status_code, r.headers["content-type"], r.text) == (status, TEXT, text)


def _fails(r: httpx.Response, status: int, error: str) -> None:
    assert (r.status_code, r.headers["content-type"], r.json()) == (status, JSON, {"ok": False, "error": error})


# --------------------------------------------------------------------------- the gate


def test_a_token_in_the_query_is_refused_before_the_method(hooks: Hooks) -> None:
    _plain(hooks.http.get("/hooks/wake?token=x"), 400, TOKEN_IN_QUERY)
    _plain(hooks.post(f"/hooks/wake?token={HOOK_TOKEN}", {"text": "x"}, token=None), 400, TOKEN_IN_QUERY)
    r = hooks.http.get("/hooks/wake", headers={"X-OpenClaw-Token": HOOK_TOKEN})
    _plain(r, 405, "Method Not Allowed")
    assert r.headers["allow"] == "POST"


def test_the_hook_token_comes_in_either_header_and_nothing_else_opens_the_gate(hooks: Hooks) -> None:
    ok = {"text": "gate check", "mode": "next-heartbeat"}
    assert hooks.post("/hooks/wake", ok).status_code == 200  # X-OpenClaw-Token
    assert hooks.post("/hooks/wake", ok, bearer=True).status_code == 200  # Authorization: Bearer
    # A non-empty bearer wins over the other header, even when it is the wrong one.
    r = hooks.post("/hooks/wake", ok, token="wrong", bearer=True, headers={"X-OpenClaw-Token": HOOK_TOKEN})
    _plain(r, 401, "Unauthorized")
    _plain(hooks.post("/hooks/wake", ok, token=None), 401, "Unauthorized")
    _plain(hooks.post("/hooks/wake", ok, token=GATEWAY_TOKEN, bearer=True), 401, "Unauthorized")  # not the gateway's
    _plain(hooks.post("/hooks", ok), 404, "Not Found")  # exactly the base path
    _plain(hooks.post("/hooks/no-such-mapping", ok), 404, "Not Found")


# --------------------------------------------------------------------------- bodies and payloads


def test_bodies(hooks: Hooks) -> None:
    r = hooks.post("/hooks/wake", content=b"{bad")
    assert r.status_code == 400 and r.json() == {"ok": False, "error": "Expected property name or '}' in JSON at position 1 (line 1 column 2)"}
    _fails(hooks.post("/hooks/wake", content=b"x" * (256 * 1024 + 1)), 413, "payload too large")
    # A JSON content type is not required, and a body that is not an object reads as {}.
    _fails(hooks.post("/hooks/wake", content=b"[1]"), 400, "text required")
    r = hooks.post("/hooks/wake", content=b'{"text":"plain body","mode":"next-heartbeat"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "text required"),
        ({"text": "   "}, "text required"),
        ({"text": "x", "mode": "next-heartbeat", "sessionKey": "hook:a"}, "sessionKey requires mode=now"),
        ({"text": "x", "sessionKey": "other:a"}, "sessionKey must start with one of: hook:"),
        ({"text": "x", "agentId": "nope"}, 'unknown agentId "nope"'),
    ],
)
def test_wake_payload_errors(hooks: Hooks, body: dict[str, Any], error: str) -> None:
    _fails(hooks.post("/hooks/wake", body), 400, error)


def test_wake_queues_then_coalesces_the_same_text(hooks: Hooks) -> None:
    body = {"text": f"wake once {hooks.kind}", "mode": "next-heartbeat"}
    assert hooks.post("/hooks/wake", body).json() == {"ok": True, "mode": "next-heartbeat", "eventOutcome": "queued"}
    assert hooks.post("/hooks/wake", body).json() == {"ok": True, "mode": "next-heartbeat", "eventOutcome": "coalesced"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "message required"),
        ({"message": "hi", "waitForCompletion": "yes"}, "waitForCompletion must be boolean"),
        ({"message": "hi", "channel": "telegram"}, "channel must be last|a2a"),
        ({"message": "hi", "agentId": "nope"}, 'unknown agentId "nope"'),
        ({"message": "hi", "sessionKey": "other:x"}, "sessionKey must start with one of: hook:"),
        ({"message": "hi", "sessionMode": "persistent"}, "sessionKey is required when sessionMode is persistent"),
    ],
)
def test_agent_payload_errors(hooks: Hooks, body: dict[str, Any], error: str) -> None:
    before = len(hooks.upstream.chat_requests())
    _fails(hooks.post("/hooks/agent", body), 400, error)
    assert len(hooks.upstream.chat_requests()) == before  # refused before any run


def test_an_empty_body_reads_as_an_empty_object(hooks: Hooks) -> None:
    r = hooks.http.post("/hooks/wake", headers={"X-OpenClaw-Token": HOOK_TOKEN}, timeout=5)
    _fails(r, 400, "text required")


# --------------------------------------------------------------------------- agent runs


def test_an_agent_hook_runs_a_turn_and_waits_for_its_completion(hooks: Hooks) -> None:
    message = f"hook turn for {hooks.kind}"
    r = hooks.post("/hooks/agent", {"message": message, "waitForCompletion": True})
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True and isinstance(body["runId"], str) and body["runId"]
    assert body["completion"] == {"status": "ok", "replyDisposition": "visible", "delivered": False, "deliveryAttempted": False}
    assert any(message in p for p in hooks.prompts())  # the turn reached the model (wrapped as external content)


def test_without_waiting_the_run_is_admitted_and_answered_at_once(hooks: Hooks) -> None:
    message = f"fire and forget {hooks.kind}"
    body = hooks.post("/hooks/agent", {"message": message, "deliver": False}).json()
    assert set(body) == {"ok", "runId"} and body["ok"] is True
    assert hooks.upstream.wait_for(lambda u: any(message in last_user_text(r.body) for r in u.chat_requests()), timeout=30)


def test_a_failed_run_completes_with_error(hooks: Hooks) -> None:
    body = hooks.post("/hooks/agent", {"message": "ERR400 please", "waitForCompletion": True}).json()
    assert body["ok"] is True and body["completion"] == {"status": "error", "replyDisposition": "empty"}


def test_delivery_to_a_channel_that_cannot_take_it_is_reported(hooks: Hooks) -> None:
    body = {"message": "deliver me", "waitForCompletion": True, "channel": "a2a", "to": "nobody"}
    completion = hooks.post("/hooks/agent", body).json()["completion"]
    assert completion == {"status": "ok", "replyDisposition": "visible", "delivered": False, "deliveryAttempted": True,
                          "deliveryError": "delivery-failed"}


def test_idempotent_replays_answer_the_first_run(hooks: Hooks) -> None:
    body = {"message": f"idempotent {hooks.kind}", "waitForCompletion": True}
    first = hooks.post("/hooks/agent", body, headers={"Idempotency-Key": f"idem-{hooks.kind}"}).json()
    calls = len(hooks.upstream.chat_requests())
    # The same key from each of its three places replays the same run, with its completion.
    for how in ({"headers": {"Idempotency-Key": f"idem-{hooks.kind}"}},
                {"headers": {"X-OpenClaw-Idempotency-Key": f"idem-{hooks.kind}"}},
                {"extra": {"idempotencyKey": f"idem-{hooks.kind}"}}):
        again = hooks.post("/hooks/agent", {**body, **how.get("extra", {})}, headers=how.get("headers")).json()
        assert again == first
    assert len(hooks.upstream.chat_requests()) == calls  # no second turn
    other = hooks.post("/hooks/agent", {**body, "message": "another message"}, headers={"Idempotency-Key": f"idem-{hooks.kind}"})
    assert other.json()["runId"] != first["runId"]  # the key is scoped by the dispatch fields


def test_a_persistent_session_key_is_accepted_with_the_prefix_policy(hooks: Hooks) -> None:
    r = hooks.post("/hooks/agent", {"message": "persist", "sessionKey": "hook:fixed", "sessionMode": "persistent",
                                    "waitForCompletion": True})
    assert r.status_code == 200 and r.json()["completion"]["status"] == "ok"


# --------------------------------------------------------------------------- mappings


def test_an_agent_mapping_renders_its_template_into_the_turn(hooks: Hooks) -> None:
    title = f"Crash on start ({hooks.kind})"
    r = hooks.post("/hooks/gh", {"issue": {"title": title}})
    assert r.status_code == 200 and set(r.json()) == {"ok", "runId"}
    want = f"Issue {title} opened"
    assert hooks.upstream.wait_for(lambda u: any(want in last_user_text(q.body) for q in u.chat_requests()), timeout=30)


def test_a_wake_mapping_and_templates_that_render_to_nothing(hooks: Hooks) -> None:
    r = hooks.post("/hooks/ping", {"note": f"mapped wake {hooks.kind}"})
    assert r.json() == {"ok": True, "mode": "next-heartbeat", "eventOutcome": "queued"}
    _fails(hooks.post("/hooks/ping", {}), 400, "hook mapping requires text")
    _fails(hooks.post("/hooks/say", {"id": 1}), 400, "hook mapping requires message")


def test_a_templated_mapping_session_key_follows_the_request_key_policy(hooks: Hooks) -> None:
    """It renders caller data: allowed here (allowRequestSessionKey, prefix ``hook:``), checked against the prefixes."""
    r = hooks.post("/hooks/say", {"text": f"templated key {hooks.kind}", "id": "a1"})
    assert r.status_code == 200 and set(r.json()) == {"ok", "runId"}


# --------------------------------------------------------------------------- the failed-token limiter


@pytest.mark.skipif(not has_ipv6_loopback(), reason="needs ::1 to keep the lockout off 127.0.0.1")
def test_failed_hook_tokens_lock_the_client_out_loopback_included(hooks: Hooks) -> None:
    """20 failures in 60 s from one client, then 429 for 60 s; ::1 is that client (loopback is not
    exempt here), 127.0.0.1 is another and stays open; a right token still passes."""
    with httpx.Client(base_url=f"http://[::1]:{hooks.port}", timeout=30) as v6:
        def wrong() -> httpx.Response:
            return v6.post("/hooks/wake", json={"text": "x"}, headers={"X-OpenClaw-Token": "wrong"})

        for _ in range(20):
            _plain(wrong(), 401, "Unauthorized")
        locked = wrong()
        _plain(locked, 429, "Too Many Requests")
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        _plain(v6.post("/hooks/wake", json={"text": "x"}), 429, "Too Many Requests")  # a missing token too
        assert hooks.post("/hooks/wake", {"text": "other client", "mode": "next-heartbeat"}).status_code == 200
        right = v6.post("/hooks/wake", json={"text": "right token", "mode": "next-heartbeat"}, headers={"X-OpenClaw-Token": HOOK_TOKEN})
        assert right.status_code == 200  # the limiter only answers for wrong tokens; success resets it
        _plain(wrong(), 401, "Unauthorized")
