"""The streaming encoders' invariants: a finish chunk always precedes ``[DONE]`` (published regressions
#23013/#54174), tool calls stream as deltas, whitespace is held back, and nothing follows the end."""

from __future__ import annotations

import json

import pytest
from support import context, ok, provider_failure, tool_calls

from gateway_core.openai.chat import plan_chat
from gateway_core.openai.chat_render import ChatStream, split_arguments
from gateway_core.openai.responses import plan_responses
from gateway_core.openai.responses_render import ResponsesStream


def chat_stream(body: dict | None = None) -> ChatStream:
    payload = {"stream": True, "messages": [{"role": "user", "content": "hi"}], **(body or {})}
    return ChatStream(plan_chat(json.dumps(payload).encode(), context()))


def frames(data: bytes) -> list[dict | str]:
    out: list[dict | str] = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        assert frame.startswith("data: ") and "\n" not in frame
        payload = frame.removeprefix("data: ")
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def finish_reasons(items: list[dict | str]) -> list[str | None]:
    return [c["choices"][0]["finish_reason"] for c in items if isinstance(c, dict) and c.get("choices")]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ok("hello"), "stop"),
        (ok(""), "stop"),
        (ok("cut", stop_reason="length"), "length"),
        (tool_calls(("c1", "get_weather", {"city": "Paris"})), "tool_calls"),
        (tool_calls(("c1", "a", "{}"), ("c2", "b", "{}"), text="both"), "tool_calls"),
    ],
)
@pytest.mark.parametrize("include_usage", [False, True])
def test_finish_chunk_always_comes_before_done(result: object, reason: str, include_usage: bool) -> None:
    """Regression guard: the published gateway once ended tool-call streams without a finish chunk."""
    stream = chat_stream({"stream_options": {"include_usage": include_usage}})
    out = frames(stream.open() + stream.assistant(delta="") + stream.finish(result))
    assert out[-1] == "[DONE]"
    finish_at = [i for i, c in enumerate(out) if isinstance(c, dict) and c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(finish_at) == 1 and out[finish_at[0]]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": reason}
    tail = out[finish_at[0] + 1 :]
    assert tail == ([{**out[0], "choices": [], "usage": tail[0]["usage"]}, "[DONE]"] if include_usage else ["[DONE]"])
    assert out[0]["choices"][0] == {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
    assert stream.closed and stream.finish(result) == b"" and stream.assistant(delta="late") == b""


def test_empty_answer_says_so() -> None:
    stream = chat_stream()
    out = frames(stream.open() + stream.finish(ok("   ")))
    assert out[1]["choices"][0]["delta"] == {"content": "No response from OpenClaw."}


def test_tool_calls_stream_as_deltas() -> None:
    args = json.dumps({"city": "P" * 600})
    stream = chat_stream()
    out = frames(stream.open() + stream.finish(tool_calls(("c1", "get_weather", args), ("c2", "noop", ""))))
    deltas = [c["choices"][0]["delta"] for c in out if isinstance(c, dict) and c.get("choices")]
    first = deltas[1]["tool_calls"][0]
    assert first == {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d and "id" not in d["tool_calls"][0]]
    assert "".join(pieces[:-1]) == args and [len(p) for p in pieces[:-1]] == [256, 256, len(args) - 512]
    assert pieces[-1] == ""  # the second call's empty arguments still get their one fragment
    assert deltas[-1] == {} and "content" not in json.dumps(deltas[1:])


def test_argument_fragments_keep_surrogate_pairs_whole() -> None:
    text = "a" * 255 + "😀" + "b"
    parts = split_arguments(text)
    assert parts == ["a" * 255, "😀b"] and "".join(parts) == text
    assert split_arguments("") == [""]


def test_trailing_whitespace_is_held_back_and_leading_dropped() -> None:
    """h06: upstream ``"tick0 "``, ``"tick1 "`` → ``"tick0"``, ``" tick1"``; the tail's whitespace never goes out."""
    stream = chat_stream()
    stream.open()
    sent = [stream.assistant(delta=d) for d in ["  lead ", "ws\n mi", "d  \n\nt", "ail  \n"]]
    contents = [frames(s)[0]["choices"][0]["delta"]["content"] for s in sent]
    assert contents == ["lead", " ws\n mi", "d  \n\nt", "ail"]
    end = frames(stream.finish(ok("  lead ws\n mid  \n\ntail  \n")))
    assert [c["choices"][0]["delta"] for c in end if isinstance(c, dict)] == [{}]


def test_whitespace_only_updates_send_nothing() -> None:
    stream = chat_stream()
    stream.open()
    assert stream.assistant(delta="   ") == b""
    assert frames(stream.assistant(delta="x"))[0]["choices"][0]["delta"] == {"content": "x"}


def test_final_text_is_the_streamed_text_else_the_result() -> None:
    """As published: once text streamed, the stream ends with it (a notice only the result carries is not sent);
    with nothing streamed, the result's text goes out whole before the finish chunk."""
    streamed = chat_stream()
    streamed.open()
    streamed.assistant(text="cut")
    end = frames(streamed.finish(ok("cut\n\n⚠️ Reply truncated", stop_reason="length")))
    assert [c["choices"][0] for c in end if isinstance(c, dict)] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    silent = chat_stream()
    silent.open()
    end = frames(silent.finish(ok("  the whole answer \n")))
    assert [c["choices"][0]["delta"] for c in end if isinstance(c, dict)] == [{"content": "the whole answer"}, {}]


def test_replacement_that_is_not_an_append_fails_the_stream() -> None:
    stream = chat_stream()
    stream.open()
    stream.assistant(text="hello world")
    assert stream.assistant(text="goodbye") == b""
    out = frames(stream.finish(ok("goodbye")))
    assert out == [{"error": {"message": "Assistant output cannot be represented as an append-only response stream.",
                              "type": "api_error"}}, "[DONE]"]


def test_agent_events_feed_the_stream() -> None:
    stream = chat_stream()
    stream.open()
    assert frames(stream.event({"text": "ab", "delta": "ab", "itemId": "r:1"}))[0]["choices"][0]["delta"] == {"content": "ab"}
    assert stream.event({"text": "zz", "replaceable": True}) == b""
    assert stream.event({"itemId": "r:1"}) == b""


def test_failure_frames() -> None:
    stream = chat_stream()
    stream.open()
    stream.assistant(delta="partial")
    out = frames(stream.finish(provider_failure("rate_limit", "slow down", 429)))
    assert out == [{"error": {"message": "429 slow down", "type": "rate_limit_error"}}, "[DONE]"]
    timeout = chat_stream()
    timeout.open()
    from gateway_core.agents.loop import TurnResult

    assert frames(timeout.finish(TurnResult(status="timeout", stop_reason="timeout")))[0] == {
        "error": {"message": "internal error", "type": "api_error"}}


def test_pinned_tool_choice_holds_text_and_checks_the_call() -> None:
    body = {"tools": [{"type": "function", "function": {"name": "get_weather"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    stream = chat_stream(body)
    stream.open()
    assert stream.assistant(delta="thinking about it") == b""
    out = frames(stream.finish(tool_calls(("c1", "other", "{}"))))
    assert out[0] == {"error": {"message": "tool_choice required a get_weather tool call, but the agent did not produce one",
                                "type": "api_error"}}
    ok_stream = chat_stream(body)
    ok_stream.open()
    done = frames(ok_stream.finish(tool_calls(("c1", "get_weather", "{}"), text="let me check")))
    assert done[0]["choices"][0]["delta"] == {"content": "let me check"}
    assert finish_reasons(done) == [None, None, None, "tool_calls"]


def responses_stream(text_deltas: list[str], result: object) -> list[tuple[str, dict]]:
    plan = plan_responses(json.dumps({"model": "openclaw", "stream": True, "input": "hi"}).encode(), context())
    stream = ResponsesStream(plan)
    data = stream.open() + b"".join(stream.assistant(delta=d) for d in text_deltas) + stream.finish(result, ["u-1"])
    out: list[tuple[str, dict]] = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        if frame == "data: [DONE]":
            out.append(("[DONE]", {}))
            continue
        event, payload = frame.split("\n")
        body = json.loads(payload.removeprefix("data: "))
        assert event == f"event: {body['type']}" and "sequence_number" not in body
        out.append((body["type"], body))
    return out


def test_responses_stream_ends_with_terminal_event_then_done() -> None:
    events = responses_stream(["tick0 ", "tick1 "], ok("tick0 tick1"))
    names = [e for e, _ in events]
    assert names == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                     "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
                     "response.content_part.done", "response.output_item.done", "response.completed", "[DONE]"]
    assert [b["delta"] for e, b in events if e == "response.output_text.delta"] == ["tick0", " tick1"]
    assert events[-2][1]["response"]["output"][0]["content"][0]["text"] == "tick0 tick1"


def test_responses_incomplete_and_failed() -> None:
    incomplete = responses_stream(["cut"], ok("cut", stop_reason="length"))
    final = incomplete[-2][1]["response"]
    assert incomplete[-2][0] == "response.incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    failed = responses_stream([], provider_failure("auth", "bad key", 401))
    assert [e for e, _ in failed][-2:] == ["response.failed", "[DONE]"]
    assert failed[-2][1]["response"]["error"] == {"code": "authentication_error", "message": "401 bad key"}


def test_whole_wire_message_wins_over_the_preview() -> None:
    from gateway_core.openai.failures import non_stream

    result = provider_failure("format", "x" * 300, 400)
    result.error_detail["wireMessage"] = "400 " + "x" * 1000
    assert non_stream(result).message == "400 " + "x" * 1000
