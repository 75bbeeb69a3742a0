"""Chat completions against the recordings: every refusal byte for byte, every answer after normalizing ids.

A recorded 200 is re-rendered from a run that ended the way the recorded one did (its text, its
usage, its tool calls); the bytes must then be the recorded ones with ids and ``created`` masked.
"""

from __future__ import annotations

import json

import pytest
from recordings import load, normalize
from support import CONFIG, REQUEST_ID, context, ok, provider_failure, tool_calls

from gateway_core.agents.roster import roster
from gateway_core.openai.chat import plan_chat
from gateway_core.openai.chat_render import ChatStream, chat_completion
from gateway_core.openai.wire import Refused

REFUSED = ["b05_chat_unknown_model_gpt4o", "b06_chat_unknown_agent", "b14_chat_missing_messages",
           "b15_chat_empty_messages", "b16_chat_only_system", "b19_chat_invalid_json", "b20_chat_empty_body",
           "b25_chat_temperature_out_of_range", "b27_chat_x_openclaw_agent_id_unknown", "b29_chat_session_key_reserved",
           "c03_stream_unknown_model", "c04_stream_missing_messages", "j07_chat_tool_choice_unknown_function",
           "j08_chat_tools_not_array", "j11_chat_image_url_remote", "j20_chat_max_tokens_invalid"]

ANSWERED = ["b01_chat_openclaw", "b02_chat_openclaw_default", "b03_chat_openclaw_main", "b04_chat_model_omitted",
            "b07_chat_x_openclaw_model", "b08_chat_x_openclaw_model_unknown", "b09_chat_x_openclaw_model_bare",
            "b10_chat_user_alice_1", "b11_chat_user_alice_2", "b12_chat_user_ALICE_case", "b13_chat_multiturn",
            "b17_chat_wrong_content_type", "b18_chat_no_content_type", "b24_chat_params_forwarded",
            "b26_chat_user_array_only_non_text", "b28_chat_session_key_header", "h02_after_disconnect_same_user",
            "h07_after_disconnect_same_user", "i01_upstream_hang_nonstream", "j12_chat_agent_id_header_main",
            "j13_chat_model_agent_colon_form", "j14_chat_model_openclaw_colon_main", "j15_chat_model_uppercase",
            "j17_chat_message_channel_header", "j18_chat_function_role_legacy", "j19_chat_x_openclaw_scopes_ignored"]


@pytest.mark.parametrize("name", REFUSED)
def test_refusals_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    with pytest.raises(Refused) as refused:
        plan_chat(case.body, context(case.headers))
    answer = refused.value.answer
    assert answer.status == case.status
    assert answer.body.decode() == case.response_body
    assert dict(answer.headers)["Content-Type"] == case.response_headers["content-type"]


def _recorded_result(case_json: dict) -> object:
    choice = case_json["choices"][0]
    u = case_json["usage"]
    message = choice["message"]
    if choice["finish_reason"] == "tool_calls":
        calls = [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]
        return tool_calls(*calls, text=message["content"], prompt=u["prompt_tokens"], completion=u["completion_tokens"])
    return ok(message["content"], u["prompt_tokens"], u["completion_tokens"])


@pytest.mark.parametrize("name", [*ANSWERED, "c08_chat_client_tool_call_nonstream", "j06_chat_tool_choice_function_pinned_satisfied"])
def test_answers_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    plan = plan_chat(case.body, context(case.headers))
    assert not plan.stream
    answer = chat_completion(plan, _recorded_result(case.json))
    assert answer.status == 200
    assert normalize(answer.body.decode()) == normalize(case.response_body)
    assert answer.json()["id"] == f"chatcmpl_{REQUEST_ID}"


SESSIONS = {
    "b01_chat_openclaw": f"agent:main:openai:{REQUEST_ID}",
    "b10_chat_user_alice_1": "agent:main:openai-user:alice",
    "b12_chat_user_ALICE_case": "agent:main:openai-user:alice",
    "b28_chat_session_key_header": "agent:main:my-app-thread-1",
    "j12_chat_agent_id_header_main": f"agent:main:openai:{REQUEST_ID}",
}


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_keys_as_recorded(name: str) -> None:
    case = load(name)
    assert plan_chat(case.body, context(case.headers)).session_key == SESSIONS[name]


def test_flattened_history_is_what_reached_the_upstream() -> None:
    """b13, c10, j18: the user text the upstream saw, less the timestamp prefix and the Runtime line."""
    b13 = plan_chat(load("b13_chat_multiturn").body, context())
    assert b13.message == (
        "[Chat messages since your last reply - for context]\nUser: first question Q1\nAssistant: first answer A1\n"
        "User: second question Q2 part a\npart b\nAssistant: second answer A2\n\n[Current message - respond to this]\n"
        "User: current question Q3"
    )
    assert b13.extra_system == "You are terse. SYSTEM-MARKER-1\n\nDEVELOPER-MARKER-2"
    c10 = plan_chat(load("c10_chat_tool_result_followup").body, context())
    assert c10.message == (
        "[Chat messages since your last reply - for context]\nUser: weather please TOOLCALL:get_weather\n"
        'Assistant: tool_call id=c558120dc name=get_weather arguments={"city":"Paris"}\n\n'
        '[Current message - respond to this]\nTool:c558120dc: {"temp_c": 21}'
    )
    assert [t.name for t in c10.client_tools] == ["get_weather"]
    j18 = plan_chat(load("j18_chat_function_role_legacy").body, context())
    assert j18.message == "[Chat messages since your last reply - for context]\nUser: legacy function\n\n[Current message - respond to this]\nTool:f: "
    assert plan_chat(load("b26_chat_user_array_only_non_text").body, context()).message == "only assistant"


def test_overrides_params_and_channel_as_recorded() -> None:
    assert plan_chat(load("b07_chat_x_openclaw_model").body, context(load("b07_chat_x_openclaw_model").headers)).model_override == "upstream/scripted-b"
    b09 = load("b09_chat_x_openclaw_model_bare")
    assert plan_chat(b09.body, context(b09.headers)).model_override == "upstream/scripted-b"
    b08 = load("b08_chat_x_openclaw_model_unknown")
    assert plan_chat(b08.body, context(b08.headers)).model_override == "upstream/does-not-exist"
    b24 = plan_chat(load("b24_chat_params_forwarded").body, context())
    assert b24.max_tokens == 55
    assert b24.params == {"temperature": 0.3, "top_p": 0.9, "frequency_penalty": 0.2, "presence_penalty": 0.1, "seed": 7, "stop": ["STOPX"]}
    j17 = load("j17_chat_message_channel_header")
    assert plan_chat(j17.body, context(j17.headers)).channel == "telegram"
    assert plan_chat(load("b01_chat_openclaw").body, context()).channel == "webchat"


def test_tool_choice_becomes_prompt_text_and_is_not_sent_upstream() -> None:
    j04 = plan_chat(load("j04_chat_tool_choice_required_unsatisfied").body, context())
    assert j04.extra_system == "You must call one of the available tools before responding."
    j06 = plan_chat(load("j06_chat_tool_choice_function_pinned_satisfied").body, context())
    assert j06.extra_system == "You must call the get_weather tool before responding."
    assert j06.turn_spec(roster(CONFIG).default).tool_choice is None


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("g01_upstream_500_nonstream", provider_failure("server_error", "scripted upstream failure", 500)),
        ("k01_upstream_429_nonstream_to_the_end", provider_failure("rate_limit", "scripted rate limit: slow down; Retry-After: 1 seconds", 429)),
        ("g05_upstream_401_nonstream", provider_failure("auth", "scripted invalid api key", 401)),
        ("h05_upstream_400_nonstream", provider_failure("format", "scripted bad request: unsupported parameter", 400)),
        ("g06_after_upstream_401_provider_cooldown", provider_failure("cooldown", 'Inline API key for provider "upstream" is temporarily disabled')),
        ("i02_upstream_hang_every_retry_nonstream", provider_failure("timeout", "LLM idle timeout (20s): no response from model")),
        ("j04_chat_tool_choice_required_unsatisfied", ok("upstream-reply: just talk, no tool")),
    ],
)
def test_failures_as_recorded(name: str, result: object) -> None:
    case = load(name)
    plan = plan_chat(case.body, context(case.headers))
    answer = chat_completion(plan, result)
    assert (answer.status, answer.body.decode()) == (case.status, case.response_body)


def _deltas(case_frames: list[str]) -> list[str]:
    out = []
    for frame in case_frames:
        obj = json.loads(frame.removeprefix("data: ")) if frame != "data: [DONE]" else None
        if obj and obj.get("choices") and "content" in obj["choices"][0]["delta"]:
            out.append(obj["choices"][0]["delta"]["content"])
    return out


def _stream(case_name: str, result: object, pieces: list[str] | None = None) -> tuple[list[str], list[str]]:
    case = load(case_name)
    plan = plan_chat(case.body, context(case.headers))
    assert plan.stream
    stream = ChatStream(plan)
    out = stream.open()
    for piece in pieces if pieces is not None else _deltas(case.frames()):
        out += stream.assistant(delta=piece)
    out += stream.finish(result)
    assert stream.closed
    ours = [f for f in normalize(out.decode()).split("\n\n") if f]
    return ours, [normalize(f) for f in case.frames()]


@pytest.mark.parametrize(
    "name",
    ["c01_stream_openclaw", "c02_stream_include_usage", "c05_stream_x_openclaw_model", "c06_stream_user_bob_1",
     "c07_stream_user_bob_2"],
)
def test_text_streams_as_recorded(name: str) -> None:
    case = load(name)
    text = "".join(_deltas(case.frames()))
    usage_frames = [json.loads(f.removeprefix("data: ")) for f in case.frames() if '"usage"' in f]
    u = usage_frames[0]["usage"] if usage_frames else {"prompt_tokens": 137, "completion_tokens": 7}
    ours, recorded = _stream(name, ok(text, u["prompt_tokens"], u["completion_tokens"]))
    assert ours == recorded


def test_tool_call_stream_as_recorded() -> None:
    """c09: id/type/name with ``arguments:""``, then the arguments, then finish_reason tool_calls, usage, [DONE]."""
    ours, recorded = _stream("c09_stream_client_tool_call", tool_calls(("117ad8040", "get_weather", {"city": "Paris"}), prompt=200))
    assert ours == recorded


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("g02_upstream_500_stream", provider_failure("server_error", "scripted upstream failure", 500)),
        ("j03_chat_upstream_400_stream", provider_failure("format", "scripted bad request: unsupported parameter", 400)),
        ("h01_stream_during_provider_cooldown", provider_failure(
            "cooldown", "", error='Inline API key for provider "upstream" is temporarily disabled after a provider '
            "auth/billing failure. Retry after about 1 minute, or switch to a different auth profile/API key.")),
        ("j05_chat_tool_choice_required_stream_unsatisfied", ok("upstream-reply-1: just talk, no tool")),
    ],
)
def test_stream_failures_as_recorded(name: str, result: object) -> None:
    """Upstream failures stream nothing before the error frame; j05's text is held back by tool_choice."""
    pieces = ["upstream-reply-1: ", "just talk, no tool"] if name.startswith("j05") else []
    ours, recorded = _stream(name, result, pieces=pieces)
    assert ours == recorded
