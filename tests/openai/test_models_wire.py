"""Agent selection, ``x-openclaw-model`` resolution, the shared error bodies and JavaScript-compatible JSON."""

from __future__ import annotations

import json

import pytest
from recordings import load
from support import CONFIG, context

from gateway_core.agents.roster import roster
from gateway_core.config import validate_config
from gateway_core.openai import wire
from gateway_core.openai.chat import plan_chat
from gateway_core.openai.models import listed_ids, model_detail, model_override, resolve_agent
from gateway_core.openai.wire import Refused, js_number

ROSTER = roster(CONFIG)
FLEET = roster({"agents": {"entries": {"main": {}, "ops": {"default": True}, "Sales Team": {}}}})
NO_OWNER = roster({"agents": {"entries": {"a": {}, "b": {}}}})


@pytest.mark.parametrize(
    ("model", "headers", "agent"),
    [
        (None, {}, "ops"), ("openclaw", {}, "ops"), ("OpenClaw/Default", {}, "ops"), ("openclaw/main", {}, "main"),
        ("openclaw:MAIN", {}, "main"), ("agent:sales-team", {}, "sales-team"), ("openclaw", {"x-openclaw-agent": "main"}, "main"),
        ("openclaw/ops", {"x-openclaw-agent-id": "Main"}, "main"),
    ],
)
def test_agent_selection(model: str | None, headers: dict[str, str], agent: str) -> None:
    assert resolve_agent(FLEET, model, headers) == agent


@pytest.mark.parametrize(
    ("roster_", "model", "headers", "message"),
    [
        (FLEET, "gpt-4o", {"x-openclaw-agent-id": "main"}, "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`."),
        (FLEET, "openclaw/ghost", {}, "Unknown agent 'ghost'."),
        (FLEET, None, {"x-openclaw-agent-id": "no such!"}, "Unknown agent 'no such!'."),
        (NO_OWNER, "openclaw", {}, "Multiple agents are configured, but this operation has no explicit owner."),
    ],
)
def test_agent_selection_errors(roster_: object, model: str | None, headers: dict[str, str], message: str) -> None:
    with pytest.raises(Refused) as refused:
        resolve_agent(roster_, model, headers)  # type: ignore[arg-type]
    assert refused.value.answer.json()["error"]["message"].startswith(message)


def test_models_list_for_a_fleet() -> None:
    assert listed_ids(FLEET) == ["openclaw", "openclaw/default", "openclaw/ops", "openclaw/main", "openclaw/sales-team"]
    assert model_detail(FLEET, "openclaw%2Fsales-team").status == 200
    assert model_detail(FLEET, "OpenClaw%2FMain").status == 404  # listed ids are matched exactly
    assert model_detail(FLEET, "openclaw%E0%A4").json()["error"]["message"] == "Invalid model id encoding."


def test_model_override_rules() -> None:
    assert model_override(CONFIG, ROSTER, "main", "upstream/scripted-b") == "upstream/scripted-b"
    assert model_override(CONFIG, ROSTER, "main", "scripted-b") == "upstream/scripted-b"  # the provider that has it
    assert model_override(CONFIG, ROSTER, "main", "other-model") == "upstream/other-model"  # the agent's provider
    aliased = {**CONFIG, "agents": {"defaults": {**CONFIG["agents"]["defaults"], "models": {"upstream/scripted-b": {"alias": "fast"}}}}}
    assert model_override(aliased, roster(aliased), "main", "Fast") == "upstream/scripted-b"
    assert model_override(CONFIG, ROSTER, "main", None) is None
    for bad in ("a b", "/x", "x/"):
        with pytest.raises(Refused) as refused:
            model_override(CONFIG, ROSTER, "main", bad)
        assert refused.value.answer.json()["error"]["message"] == "Invalid `x-openclaw-model`."
    with pytest.raises(Refused) as refused:
        model_override(CONFIG, ROSTER, "main", "upstream/x", allowed=("upstream/scripted",))
    assert refused.value.answer.json()["error"]["message"] == "Model 'upstream/x' is not allowed for agent 'main'."


def test_model_override_needs_an_owner() -> None:
    """Checked before the body is read: a non-owner gets the gateway-style missing-scope 403 even for bad JSON."""
    with pytest.raises(Refused) as refused:
        plan_chat(b"{", context({"x-openclaw-model": "upstream/scripted-b"}, sender_is_owner=False))
    assert refused.value.answer.status == 403
    assert refused.value.answer.json() == {"ok": False, "error": {"type": "forbidden", "message": "missing scope: operator.admin",
        "details": {"code": "MISSING_SCOPE", "missingScope": "operator.admin", "requiredScopes": ["operator.admin"]}}}


@pytest.mark.parametrize(
    ("answer", "name"),
    [(wire.unauthorized(), "a02_models_noauth"), (wire.payload_too_large(), "j09_chat_body_over_20MB"),
     (wire.payload_too_large(), "j10_tools_invoke_body_over_2MB"), (wire.method_not_allowed(), "b23_chat_get_405")],
)
def test_shared_bodies_are_the_recorded_bytes(answer: wire.Answer, name: str) -> None:
    case = load(name)
    assert (answer.status, answer.body.decode(), dict(answer.headers)["Content-Type"]) == (
        case.status, case.response_body, case.response_headers["content-type"])
    if answer.status == 405:
        assert dict(answer.headers)["Allow"] == case.response_headers["allow"] == "POST"


def test_other_shared_bodies() -> None:
    assert wire.rate_limited(1500).headers[-1] == ("Retry-After", "2")
    assert wire.rate_limited(None).json()["error"] == {
        "message": "Too many failed authentication attempts. Please try again later.", "type": "rate_limited"}
    assert wire.body_timeout().json() == {"error": {"message": "Request body timeout", "type": "invalid_request_error"}}
    assert wire.proxy_attribution_required().json()["error"]["type"] == "proxy_attribution_required"
    assert wire.not_found_text().body == b"Not Found"
    assert wire.data_frame({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert wire.event_frame({"type": "x.y", "v": 1}) == b'event: x.y\ndata: {"type":"x.y","v":1}\n\n'


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (-0.0, "0"), (1e-7, "1e-7"), (1e-6, "0.000001"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
     (123456789012345678.0, "123456789012345680"), (-0.422644, "-0.422644"), (5e-324, "5e-324"), (1.5e300, "1.5e+300"),
     (float("nan"), "null")],
)
def test_js_numbers(value: float, text: str) -> None:
    assert js_number(value) == text
    if text != "null":
        assert json.loads(text) == value


def test_extension_config_keys_validate() -> None:
    ok = {"gateway": {"http": {"endpoints": {"chatCompletions": {"sessionMode": "conversation", "conversation": {"history": "session"}},
                                            "responses": {"previousResponse": {"persist": True}}}}}}
    assert validate_config(ok) == []
    assert validate_config({"gateway": {"http": {"endpoints": {"chatCompletions": {"sessionMode": "sticky"}}}}})
