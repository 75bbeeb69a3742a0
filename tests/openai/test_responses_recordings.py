"""The Responses API against the recordings: refusals byte for byte, objects and event streams after masking ids."""

from __future__ import annotations

import json

import pytest
from recordings import load, normalize
from support import AUX_ID, NOW_MS, REQUEST_ID, context, ok, provider_failure, tool_calls

from gateway_core.openai.responses import plan_responses
from gateway_core.openai.responses_render import ResponsesStream, response_answer
from gateway_core.openai.sessions import LinkMap, Scope, auth_subject
from gateway_core.openai.wire import Refused

REFUSED = ["d06_responses_unknown_field", "d07_responses_missing_model", "d08_responses_missing_input", "d09_responses_bad_model"]


@pytest.mark.parametrize("name", REFUSED)
def test_refusals_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    with pytest.raises(Refused) as refused:
        plan_responses(case.body, context(case.headers))
    assert (refused.value.answer.status, refused.value.answer.body.decode()) == (case.status, case.response_body)


def _result_of(obj: dict) -> object:
    u = obj["usage"]
    calls = [(o["call_id"], o["name"], o["arguments"]) for o in obj["output"] if o["type"] == "function_call"]
    text = "".join(c["text"] for o in obj["output"] if o["type"] == "message" for c in o["content"])
    if calls:
        return tool_calls(*calls, text=text, prompt=u["input_tokens"], completion=u["output_tokens"])
    return ok(text, u["input_tokens"], u["output_tokens"])


@pytest.mark.parametrize(
    "name",
    ["d01_responses_basic", "d03_responses_previous_response_id", "d04_responses_previous_unknown_id",
     "d05_responses_items_instructions", "d10_responses_user_carol_1", "d11_responses_user_carol_2",
     "d12_responses_function_call", "d13_responses_function_call_output", "d17_responses_x_openclaw_model",
     "d18_responses_max_output_tokens"],
)
def test_objects_are_the_recorded_bytes(name: str) -> None:
    case = load(name)
    plan = plan_responses(case.body, context(case.headers))
    calls = [o["id"].removeprefix("call_") for o in case.json["output"] if o["type"] == "function_call"]
    answer = response_answer(plan, _result_of(case.json), calls)
    assert answer.status == 200
    assert normalize(answer.body.decode()) == normalize(case.response_body)
    assert answer.json()["id"] == f"resp_{REQUEST_ID}"


def test_prompt_of_items_and_instructions() -> None:
    d05 = plan_responses(load("d05_responses_items_instructions").body, context())
    assert d05.message == (
        "[Chat messages since your last reply - for context]\nUser: first user item\nAssistant: assistant item reply\n\n"
        "[Current message - respond to this]\nUser: second user item"
    )
    assert d05.extra_system == "INSTRUCTIONS-MARKER be brief\n\nSYS-ITEM-MARKER"
    d13 = plan_responses(load("d13_responses_function_call_output").body, context())
    assert d13.message == 'Tool:1ecad10b4: {"temp_c": 19}'
    assert d13.session_key == "agent:main:openresponses-user:rtool"
    d18 = plan_responses(load("d18_responses_max_output_tokens").body, context())
    assert (d18.max_tokens, d18.params) == (33, {"temperature": 0.5})


def test_previous_response_id_continues_the_session_in_scope() -> None:
    """d01 then d03: the second request runs in the first one's session; d04's unknown id is no error."""
    links = LinkMap()
    subject = auth_subject("token", "<REDACTED_TOKEN>")
    first = plan_responses(load("d01_responses_basic").body, context(auth_subject=subject))
    links.store("resp_d8022971-ee42-4f56-bf1f-999448b1450f", first.session_key, first.scope, NOW_MS)
    again = plan_responses(load("d03_responses_previous_response_id").body,
                           context(auth_subject=subject, request_id="11111111-1111-4111-8111-111111111111"), links)
    assert again.continued and again.session_key == first.session_key == f"agent:main:openresponses:{REQUEST_ID}"
    other = plan_responses(load("d03_responses_previous_response_id").body,
                           context(auth_subject=auth_subject("token", "another-token"), request_id="22222222-2222-4222-8222-222222222222"), links)
    assert not other.continued and other.session_key.endswith("22222222-2222-4222-8222-222222222222")
    unknown = plan_responses(load("d04_responses_previous_unknown_id").body, context(auth_subject=subject), links)
    assert not unknown.continued
    assert first.scope == Scope(subject=subject, agent_id="main", requested_key=None)


def _event_stream(name: str, result: object, pieces: list[str]) -> tuple[list[str], list[str]]:
    case = load(name)
    plan = plan_responses(case.body, context(case.headers))
    assert plan.stream
    stream = ResponsesStream(plan)
    out = stream.open()
    for piece in pieces:
        out += stream.assistant(delta=piece)
    recorded = case.frames()
    call_ids = sorted({json.loads(f.split("data: ", 1)[1]).get("item", {}).get("id", "").removeprefix("call_")
                       for f in recorded if '"function_call"' in f} - {""})
    out += stream.finish(result, call_ids)
    msg_id = next(json.loads(f.split("data: ", 1)[1])["item"]["id"] for f in recorded if "output_item.added" in f)
    ours = out.decode().replace(f"msg_{AUX_ID}", msg_id)
    return [normalize(f) for f in ours.split("\n\n") if f], [normalize(f) for f in recorded]


def _recorded_deltas(name: str) -> list[str]:
    return [json.loads(f.split("data: ", 1)[1])["delta"] for f in load(name).frames() if "output_text.delta" in f]


@pytest.mark.parametrize("name", ["d02_responses_stream", "j16_responses_stream_user_dave"])
def test_text_event_streams_as_recorded(name: str) -> None:
    pieces = _recorded_deltas(name)
    final = json.loads(load(name).frames()[-2].split("data: ", 1)[1])["response"]["usage"]
    ours, recorded = _event_stream(name, ok("".join(pieces), final["input_tokens"], final["output_tokens"]), pieces)
    assert ours == recorded


def test_function_call_event_stream_as_recorded() -> None:
    """d14: the opened message item is closed empty (commentary), then the call at output_index 1."""
    ours, recorded = _event_stream("d14_responses_stream_function_call",
                                   tool_calls(("2efdd40c6", "get_weather", {"city": "Paris"}), prompt=218), [])
    assert ours == recorded


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("j01_responses_upstream_400_nonstream", provider_failure("format", "scripted bad request: unsupported parameter", 400)),
        ("k02_responses_upstream_500_nonstream", provider_failure("server_error", "scripted upstream failure", 500)),
    ],
)
def test_failed_objects_as_recorded(name: str, result: object) -> None:
    case = load(name)
    answer = response_answer(plan_responses(case.body, context(case.headers)), result)
    assert answer.status == case.status
    assert normalize(answer.body.decode()) == normalize(case.response_body)


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("j02_responses_upstream_400_stream", provider_failure("format", "scripted bad request: unsupported parameter", 400)),
        ("k03_responses_upstream_500_stream", provider_failure("server_error", "scripted upstream failure", 500)),
    ],
)
def test_failed_event_streams_as_recorded(name: str, result: object) -> None:
    ours, recorded = _event_stream(name, result, [])
    assert ours == recorded


def test_stream_opening_is_written_before_any_text() -> None:
    """h03: the four opening events come from :meth:`open` alone; deltas as the run streams."""
    case = load("h03_client_disconnect_midstream_responses")
    stream = ResponsesStream(plan_responses(case.body, context(case.headers)))
    opening = stream.open().decode()
    assert [line.split(": ", 1)[1] for line in opening.split("\n") if line.startswith("event: ")] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    ticks = [stream.assistant(delta=f"tick{i} ").decode() for i in range(7)]
    deltas = [json.loads(t.split("data: ", 1)[1])["delta"] for t in ticks]
    assert deltas == _recorded_deltas("h03_client_disconnect_midstream_responses")
