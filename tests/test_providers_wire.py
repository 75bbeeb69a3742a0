"""The pure provider layer: request bodies against what the published gateway sent upstream, stream
parsing, error mapping, retry decisions, the offline provider. No sockets, no clock."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway_core.providers import (
    DEFAULT_POLICY,
    PUBLISHED_POLICY,
    ChatMessage,
    Compat,
    Cooldowns,
    ImagePart,
    ModelRequest,
    ProviderError,
    ReasoningDelta,
    StreamEnd,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    TurnBuilder,
    UsageReport,
    compat_from_config,
    decide,
    decode_event,
    encode_event,
    error_from_http,
    fold,
    offline,
    parse_retry_after,
)
from gateway_core.providers import anthropic_messages as am
from gateway_core.providers import openai_completions as oc
from gateway_core.providers.errors import COOLDOWN_MESSAGE, RETRIES_EXHAUSTED_MESSAGE, error_from_stream
from gateway_core.providers.retry import RetryPolicy, RetryRule, backoff_s

DATA = Path(__file__).parent / "data" / "http-openai"
TOOLS_FILE = "upstream_tools_2dc313983ddb.json"


# --------------------------------------------------------------------------- request bodies vs recordings


def _recorded_chat(case: str) -> dict[str, Any]:
    for line in (DATA / f"{case}.upstream.jsonl").read_text().splitlines():
        obj = json.loads(line)
        if obj["kind"] == "request" and obj["path"].endswith("/chat/completions"):
            return obj["body"]
    raise AssertionError(f"no chat request in {case}")


def _tool_specs() -> list[ToolSpec]:
    tools = json.loads((DATA / TOOLS_FILE).read_text())
    return [ToolSpec(name=t["function"]["name"], description=t["function"]["description"],
                     parameters=t["function"]["parameters"]) for t in tools]


def _as_message(m: dict[str, Any]) -> ChatMessage:
    """How the agent loop would express a recorded message in the neutral types."""
    content = m.get("content")
    if isinstance(content, list):
        content = [TextPart(p["text"]) for p in content]
    calls = [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls", [])]
    return ChatMessage(role=m["role"], content=content, tool_calls=calls, tool_call_id=m.get("tool_call_id"))


def _request_like(recorded: dict[str, Any]) -> ModelRequest:
    params = {k: recorded[k] for k in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed", "stop")
              if k in recorded}
    return ModelRequest(
        provider="upstream", api="openai-completions", model=recorded["model"], base_url="http://127.0.0.1:1/v1",
        api_key="sk-upstream-test-key", system="SYSTEM PROMPT",
        messages=[_as_message(m) for m in recorded["messages"][1:]],
        tools=_tool_specs(), max_tokens=recorded.get("max_completion_tokens"), **params,
    )


@pytest.mark.parametrize("case", ["b01_chat_openclaw", "b24_chat_params_forwarded", "c02_stream_include_usage",
                                  "c10_chat_tool_result_followup", "b08_chat_x_openclaw_model_unknown"])
def test_chat_body_is_what_the_published_gateway_sent(case: str) -> None:
    recorded = _recorded_chat(case)
    ours = oc.build_chat_body(_request_like(recorded))
    assert ours["messages"][0] == {"role": "system", "content": "SYSTEM PROMPT"}
    assert ours["tools"] == json.loads((DATA / TOOLS_FILE).read_text())
    ours["messages"][0]["content"] = recorded["messages"][0]["content"]  # the recording's placeholders
    ours["tools"] = recorded["tools"]
    assert list(ours) == list(recorded)  # key order
    assert json.dumps(ours) == json.dumps(recorded)  # values, and key order all the way down


def test_b24_optional_params_sit_between_stream_options_and_tools() -> None:
    body = oc.build_chat_body(_request_like(_recorded_chat("b24_chat_params_forwarded")))
    assert list(body) == ["model", "messages", "stream", "stream_options", "temperature", "top_p",
                          "frequency_penalty", "presence_penalty", "seed", "stop", "tools", "tool_choice",
                          "max_completion_tokens"]
    assert body["max_completion_tokens"] == 55


def _simple(**kw: Any) -> ModelRequest:
    base: dict[str, Any] = {"provider": "p", "api": "openai-completions", "model": "m", "base_url": "http://h/v1/",
                            "messages": [ChatMessage(role="user", content="hi")]}
    base.update(kw)
    return ModelRequest(**base)


def test_compat_flags_shape_the_body() -> None:
    compat = compat_from_config({"maxTokensField": "max_tokens", "supportsUsageInStreaming": False,
                                 "supportsTools": False, "supportsTemperature": False, "unknownFlag": 1})
    body = oc.build_chat_body(_simple(compat=compat, max_tokens=10, temperature=0.5,
                                      tools=[ToolSpec(name="t")]))
    assert body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 10}


def test_no_tools_no_tool_choice_and_explicit_choice_kept() -> None:
    assert "tool_choice" not in oc.build_chat_body(_simple())
    body = oc.build_chat_body(_simple(tools=[ToolSpec(name="t")], tool_choice="none"))
    assert body["tool_choice"] == "none"
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_non_streamed_body_and_extra_body_last() -> None:
    body = oc.build_chat_body(_simple(stream=False, response_format={"type": "json_object"},
                                      extra_body={"chat_template_kwargs": {"enable_thinking": False}}))
    assert "stream" not in body and "stream_options" not in body
    assert list(body)[-2:] == ["response_format", "chat_template_kwargs"]


def test_content_parts_images_and_string_content() -> None:
    msg = ChatMessage(role="user", content=[TextPart("look"), ImagePart(data="AAAA", mime="image/jpeg"),
                                            ImagePart(url="https://x/y.png")])
    body = oc.build_chat_body(_simple(messages=[msg]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    flat = oc.build_chat_body(_simple(messages=[msg], compat=Compat(requires_string_content=True)))
    assert flat["messages"][0]["content"] == "look"


def test_tool_result_name_when_required() -> None:
    msg = ChatMessage(role="tool", content="21C", tool_call_id="c1", name="get_weather")
    assert oc.build_chat_body(_simple(messages=[msg]))["messages"][0] == {
        "role": "tool", "content": "21C", "tool_call_id": "c1"}
    named = oc.build_chat_body(_simple(messages=[msg], compat=Compat(requires_tool_result_name=True)))
    assert named["messages"][0]["name"] == "get_weather"


def test_urls_and_headers() -> None:
    assert oc.chat_url(_simple()) == "http://h/v1/chat/completions"
    assert oc.embeddings_url("http://h/v1") == "http://h/v1/embeddings"
    headers = oc.request_headers("sk-1", {"X-Extra": "1"})
    assert headers == {"accept": "application/json", "content-type": "application/json",
                       "authorization": "Bearer sk-1", "x-extra": "1"}
    assert "authorization" not in oc.request_headers(None, {})


# --------------------------------------------------------------------------- chunk parsing


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m-2024", "choices": choices, **extra}


def test_stream_of_text_reasoning_tools_and_usage() -> None:
    parser = oc.ChatStreamParser()
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "thinking…"}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "ls", "arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk(None, usage={"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                            "prompt_tokens_details": {"cached_tokens": 60},
                            "completion_tokens_details": {"reasoning_tokens": 3}}),
    ]
    events = [e for c in chunks for e in parser.parse_chunk(c)] + parser.finish()
    assert events[:3] == [ReasoningDelta("thinking…"), TextDelta("Hel"), TextDelta("lo")]
    assert events[3] == ToolCallDelta(0, "call_a", "get_weather", "")
    assert UsageReport(input=40, output=7, cache_read=60, reasoning=3, total=107) in events
    assert events[-1] == StreamEnd(finish_reason="tool_calls", response_id="chatcmpl-1", response_model="m-2024")
    turn = fold(events)
    assert turn.text == "Hello" and turn.reasoning == "thinking…"
    assert turn.tool_calls == [ToolCall("call_a", "get_weather", '{"city":"Paris"}'), ToolCall("call_b", "ls", "{}")]
    assert parser.finish() == []  # once


def test_parallel_calls_reusing_index_zero_stay_apart() -> None:
    parser = oc.ChatStreamParser()
    events = []
    for call_id, name in (("c1", "a"), ("c2", "b")):
        events += parser.parse_chunk(_chunk({"tool_calls": [{"index": 0, "id": call_id,
                                                             "function": {"name": name, "arguments": "{}"}}]}))
    events += parser.parse_chunk(_chunk({}, "tool_calls")) + parser.finish()
    assert [c.name for c in fold(events).tool_calls] == ["a", "b"]


def test_arguments_sent_as_an_object_become_json_text() -> None:
    parser = oc.ChatStreamParser()
    (event,) = parser.parse_chunk(_chunk({"tool_calls": [{"index": 0, "id": "x", "function": {
        "name": "f", "arguments": {"a": 1}}}]}))
    assert event.arguments_fragment == '{"a":1}'


def test_error_chunk_and_truncated_stream_raise() -> None:
    parser = oc.ChatStreamParser()
    with pytest.raises(ProviderError) as err:
        parser.parse_chunk({"error": {"message": "slow down", "type": "rate_limit_error"}})
    assert err.value.kind == "rate_limit"
    parser = oc.ChatStreamParser()
    parser.parse_chunk(_chunk({"content": "partial"}))
    with pytest.raises(ProviderError) as err:
        parser.finish()
    assert err.value.kind == "protocol"


def test_non_streamed_completion() -> None:
    obj = {"id": "x1", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function", "function": {
            "name": "f", "arguments": '{"q":1}'}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    turn = fold(oc.parse_completion(obj))
    assert turn.tool_calls == [ToolCall("t1", "f", '{"q":1}')]
    assert turn.finish_reason == "tool_calls" and turn.usage == UsageReport(input=5, output=2, total=7)
    plain = fold(oc.parse_completion({"choices": [{"index": 0, "message": {"content": "hi"}}]}))
    assert (plain.text, plain.finish_reason) == ("hi", "stop")
    with pytest.raises(ProviderError):
        oc.parse_completion({"object": "nothing"})


def test_turn_builder_without_ids_is_deterministic() -> None:
    builder = TurnBuilder()
    builder.feed(ToolCallDelta(0, None, "f", '{"a"'))
    builder.feed(ToolCallDelta(0, None, None, ":1}"))
    assert builder.result().tool_calls == [ToolCall("call_0", "f", '{"a":1}')]
    assert builder.result().finish_reason == "tool_calls"


def test_events_round_trip_as_json_lines() -> None:
    for event in (TextDelta("a"), ReasoningDelta("b"), ToolCallDelta(1, "i", "n", "{"),
                  UsageReport(input=1, cache_read=2, reasoning=3, total=6), StreamEnd(finish_reason="length")):
        assert decode_event(encode_event(event)) == event
    assert json.loads(encode_event(UsageReport(cache_write=4))) == {
        "type": "usage", "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 4, "reasoningTokens": 0, "total": 0}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (429, b'{"error":{"message":"scripted rate limit: slow down; Retry-After: 1 seconds","type":"rate_limit_error",'
              b'"code":"rate_limit_exceeded"}}', "rate_limit", "scripted rate limit: slow down; Retry-After: 1 seconds"),
        (401, b'{"error":{"message":"scripted invalid api key","code":"invalid_api_key"}}', "auth",
         "scripted invalid api key"),
        (403, b"forbidden", "auth", "forbidden"),
        (402, b'{"error":"insufficient credit"}', "billing", "insufficient credit"),
        (400, b'{"error":{"message":"scripted bad request: unsupported parameter"}}', "format",
         "scripted bad request: unsupported parameter"),
        (422, b'{"detail":[{"msg":"field required"}]}', "format", '[{"msg": "field required"}]'),
        (404, b'{"message":"model not found"}', "not_found", "model not found"),
        (500, b"<html>oops</html>", "server_error", "<html>oops</html>"),
        (503, b"", "server_error", "Service Unavailable"),
        (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "server_error",
         "Overloaded"),
        (400, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "server_error",
         "Overloaded"),
    ],
)
def test_error_from_http(status: int, body: bytes, kind: str, message: str) -> None:
    reason = "Service Unavailable" if status == 503 else ""
    err = error_from_http(status, {}, body, now_epoch=0.0, reason=reason)
    assert (err.kind, err.status, err.message) == (kind, status, message)
    assert err.wire_message == f"{status} {message}"


def test_published_summaries() -> None:
    def err(status: int) -> ProviderError:
        return error_from_http(status, {}, b'{"error":{"message":"m"}}', now_epoch=0).with_model("upstream", "scripted")

    assert err(500).summary == ("⚠️ upstream/scripted request failed (provider internal error, HTTP 500). "
                                "This is usually temporary — try again shortly.")
    assert err(401).summary.startswith("Authentication failed (provider returned HTTP 401). Your provider token")
    assert err(400).summary == "LLM request failed: provider rejected the request schema or tool payload."
    assert err(429).summary == "⚠️ m"
    assert repr(err(429)) == "ProviderError('rate_limit', '429 m')"


def test_long_error_bodies_are_clipped_and_unknown_kinds_refused() -> None:
    err = error_from_http(500, {}, b"x" * 5000, now_epoch=0)
    assert len(err.message) == 1000 and err.message.endswith("…")
    with pytest.raises(ValueError):
        ProviderError("bogus", "m")


def test_in_stream_error_kinds() -> None:
    assert error_from_stream({"type": "error", "error": {"type": "overloaded_error", "message": "o"}}).kind == "server_error"
    assert error_from_stream({"error": {"type": "invalid_request_error", "message": "x"}}).kind == "format"
    assert error_from_stream({"error": {"type": "authentication_error", "message": "x"}}).kind == "auth"


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert parse_retry_after("1", now) == 1.0
    assert parse_retry_after(" 2.5 ", now) == 2.5
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 +0100", now) == 0.0  # an hour ago
    assert parse_retry_after("Tue, 14 Nov 2023 22:10:00 GMT", now) == 0.0
    for bad in (None, "", "soon", "-3", "nan"):
        assert parse_retry_after(bad, now) is None
    err = error_from_http(429, {"retry-after-ms": "1500", "retry-after": "9"}, b"", now_epoch=now)
    assert err.retry_after_s == 1.5
    assert error_from_http(429, {"retry-after": "9"}, b"", now_epoch=now).retry_after_s == 9.0


# --------------------------------------------------------------------------- retry policy


def _err(kind_status: int | str, retry_after: float | None = None) -> ProviderError:
    if isinstance(kind_status, int):
        e = error_from_http(kind_status, {}, b'{"error":{"message":"m"}}', now_epoch=0)
    else:
        e = ProviderError(kind_status, "m")
    e.retry_after_s = retry_after
    return e.with_model("upstream", "scripted")


def test_rate_limit_backs_off_exponentially_and_honours_retry_after() -> None:
    delays = []
    for done in range(4):
        d = decide(_err(429), done, elapsed_s=0, jitter=0.5, has_fallback=False)
        assert d.action == "retry" and d.retry == done + 1 and d.max_retries == 4
        delays.append(d.delay_s)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert decide(_err(429, retry_after=3.0), 0, elapsed_s=0, jitter=0.5, has_fallback=False).delay_s == 3.0
    assert decide(_err(429, retry_after=0.1), 2, elapsed_s=0, jitter=0.5, has_fallback=False).delay_s == 4.0
    last = decide(_err(429), 4, elapsed_s=0, jitter=0.5, has_fallback=False)
    assert last.action == "fail" and last.message == "⚠️ m"
    assert decide(_err(429), 4, elapsed_s=0, jitter=0.5, has_fallback=True).action == "failover"
    log = decide(_err(429), 0, elapsed_s=0, jitter=0.5, has_fallback=False).log
    assert log == "transient same-model retry 1/4 for upstream/scripted reason=rate_limit: delayMs=1000"


def test_jitter_stays_in_its_band_and_under_the_cap() -> None:
    rule = RetryRule(max_retries=9, base_s=1.0, cap_s=8.0)
    assert backoff_s(rule, 1, 0.0, 0.5) == 0.5
    assert backoff_s(rule, 1, 0.999, 0.5) == pytest.approx(1.499, abs=1e-9)
    assert backoff_s(rule, 9, 1.0, 0.5) == 8.0
    assert backoff_s(rule, 3, -5.0, 0.5) == 2.0  # jitter is clamped into [0, 1]


def test_retry_after_longer_than_the_cap_is_not_waited_for() -> None:
    d = decide(_err(429, retry_after=600), 0, elapsed_s=0, jitter=0.5, has_fallback=True)
    assert d.action == "failover" and "retry-after 600s exceeds 30s" in d.log


def test_budget_stops_same_model_retries() -> None:
    d = decide(_err(500), 1, elapsed_s=44.5, jitter=0.5, has_fallback=False)
    assert d.action == "fail"
    assert d.log == ("transient retry window elapsed for upstream/scripted after 1/3 retries; "
                     "stopping same-model retries")
    assert decide(_err(500), 1, elapsed_s=10, jitter=0.5, has_fallback=False).action == "retry"


@pytest.mark.parametrize(
    ("failure", "fallback", "action", "cooldown"),
    [(401, False, "fail", 60.0), (401, True, "failover", 60.0), (402, True, "failover", 60.0),
     (400, False, "fail", 0.0), (400, True, "failover", 0.0), (404, True, "failover", 0.0),
     ("cancelled", True, "fail", 0.0), ("cooldown", True, "failover", 0.0), ("config", False, "fail", 0.0)],
)
def test_no_retry_kinds(failure: int | str, fallback: bool, action: str, cooldown: float) -> None:
    d = decide(_err(failure), 0, elapsed_s=0, jitter=0.5, has_fallback=fallback)
    assert (d.action, d.cooldown_s, d.delay_s) == (action, cooldown, 0.0)


def test_idle_timeouts_retry_once_then_use_the_published_text() -> None:
    assert decide(_err("timeout"), 0, elapsed_s=0, jitter=0.5, has_fallback=False).action == "retry"
    final = decide(_err("timeout"), 1, elapsed_s=0, jitter=0.5, has_fallback=False)
    assert final.action == "fail" and final.message == RETRIES_EXHAUSTED_MESSAGE


def test_published_policy_is_roughly_the_observed_timing() -> None:
    policy = msgspec.structs.replace(PUBLISHED_POLICY, budget_s=10_000.0)
    total, done = 0.0, 0
    while (d := decide(_err(429), done, elapsed_s=total, jitter=0.5, has_fallback=False, policy=policy)).action == "retry":
        total += d.delay_s
        done += 1
    assert done == 9 and 120 < total < 180  # observed: 9 retries, answer after 148 s (k01)
    fast = 0.0
    for n in range(4):
        fast += decide(_err(429), n, elapsed_s=0, jitter=0.999, has_fallback=False, policy=DEFAULT_POLICY).delay_s
    assert fast < 25  # the default answers within seconds, not minutes


def test_policy_is_configurable() -> None:
    policy = RetryPolicy(rules={"server_error": RetryRule(max_retries=1, base_s=0.01)})
    assert decide(_err(500), 0, elapsed_s=0, jitter=0.5, has_fallback=False, policy=policy).delay_s == 0.01
    assert decide(_err(500), 1, elapsed_s=0, jitter=0.5, has_fallback=False, policy=policy).action == "fail"
    assert decide(_err(429), 0, elapsed_s=0, jitter=0.5, has_fallback=False, policy=policy).action == "fail"


def test_cooldowns() -> None:
    cd = Cooldowns()
    assert cd.check("upstream", 100.0) is None
    cd.start("upstream", 100.0, 60.0)
    err = cd.check("upstream", 103.0)
    assert err is not None and err.kind == "cooldown" and err.status is None
    assert err.message == ('Inline API key for provider "upstream" is temporarily disabled after a provider '
                           "auth/billing failure. Retry after about 1 minute, or switch to a different auth "
                           "profile/API key.")
    assert err.message == COOLDOWN_MESSAGE.format(provider="upstream", wait="1 minute")
    cd.start("upstream", 101.0, 10.0)  # never shortens
    assert cd.remaining("upstream", 150.0) == 10.0
    assert cd.check("upstream", 160.0) is None and cd.remaining("upstream", 160.0) == 0.0
    cd.start("other", 0.0, 300.0)
    assert "about 5 minutes" in cd.check("other", 0.0).message
    cd.clear("other")
    assert cd.check("other", 1.0) is None


# --------------------------------------------------------------------------- anthropic


def test_anthropic_urls_and_headers() -> None:
    assert am.messages_url("https://api.minimax.io/anthropic") == "https://api.minimax.io/anthropic/v1/messages"
    assert am.messages_url("http://127.0.0.1:9/v1/") == "http://127.0.0.1:9/v1/messages"
    assert am.messages_url("") == "https://api.anthropic.com/v1/messages"
    headers = am.request_headers("sk-ant", {"anthropic-beta": "x"})
    assert headers["x-api-key"] == "sk-ant" and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers and headers["anthropic-beta"] == "x"


def test_anthropic_body() -> None:
    req = ModelRequest(
        provider="a", api="anthropic-messages", model="claude-x", system="You are terse.", temperature=0.2,
        stop="END", tools=[ToolSpec(name="get_weather", description="w", parameters={"type": "object"})],
        tool_choice="required",
        messages=[
            ChatMessage(role="system", content="extra system"),
            ChatMessage(role="user", content=[TextPart("see"), ImagePart(data="QUJD", mime="image/png")]),
            ChatMessage(role="assistant", content="checking",
                        tool_calls=[ToolCall("tu1", "get_weather", '{"city":"Paris"}'), ToolCall("tu2", "ls", "oops")]),
            ChatMessage(role="tool", content="21C", tool_call_id="tu1"),
            ChatMessage(role="tool", content="[]", tool_call_id="tu2"),
            ChatMessage(role="user", content="thanks"),
        ],
    )
    body = am.build_messages_body(req)
    assert list(body) == ["model", "max_tokens", "system", "messages", "stream", "temperature", "stop_sequences",
                          "tools", "tool_choice"]
    assert body["max_tokens"] == 4096 and body["system"] == "You are terse.\n\nextra system"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "QUJD"}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "tu2", "name": "ls", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tu1", "content": "21C"},
            {"type": "tool_result", "tool_use_id": "tu2", "content": "[]"},
            {"type": "text", "text": "thanks"}]},
    ]
    assert body["stop_sequences"] == ["END"] and body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    pinned = am.build_messages_body(ModelRequest(provider="a", api="anthropic-messages", model="c",
                                                 tools=[ToolSpec(name="f")], tool_choice={
                                                     "type": "function", "function": {"name": "f"}}))
    assert pinned["tool_choice"] == {"type": "tool", "name": "f"} and "system" not in pinned


def test_anthropic_plain_turns_stay_strings() -> None:
    req = ModelRequest(provider="a", api="anthropic-messages", model="c", max_tokens=50, messages=[
        ChatMessage(role="user", content="one"), ChatMessage(role="assistant", content="two"),
        ChatMessage(role="user", content="three")])
    body = am.build_messages_body(req)
    assert body["messages"] == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                                {"role": "user", "content": "three"}]
    assert body["max_tokens"] == 50


ANTHROPIC_STREAM = [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                                          "content": [], "usage": {"input_tokens": 25, "output_tokens": 1,
                                                                   "cache_read_input_tokens": 100,
                                                                   "cache_creation_input_tokens": 10}}},
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                  "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 42}},
    {"type": "message_stop"},
]


def test_anthropic_stream() -> None:
    parser = am.MessagesStreamParser()
    events = [e for obj in ANTHROPIC_STREAM for e in parser.parse_event(obj)] + parser.finish()
    assert events[:4] == [ReasoningDelta("hmm"), TextDelta("Let me "), TextDelta("check."),
                          ToolCallDelta(0, "toolu_1", "get_weather", "")]
    assert events[-2] == UsageReport(input=25, output=42, cache_read=100, cache_write=10, total=177)
    assert events[-1] == StreamEnd(finish_reason="tool_calls", response_id="msg_1", response_model="claude-x")
    turn = fold(events)
    assert turn.text == "Let me check." and turn.tool_calls == [ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')]


def test_anthropic_stream_errors() -> None:
    parser = am.MessagesStreamParser()
    with pytest.raises(ProviderError) as err:
        parser.parse_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert (err.value.kind, err.value.message) == ("server_error", "Overloaded")
    parser = am.MessagesStreamParser()
    for obj in ANTHROPIC_STREAM[:7]:
        parser.parse_event(obj)
    with pytest.raises(ProviderError) as err:
        parser.finish()
    assert err.value.kind == "protocol"


def test_anthropic_whole_message() -> None:
    obj = {"id": "msg_2", "type": "message", "role": "assistant", "model": "c", "stop_reason": "max_tokens",
           "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
           "usage": {"input_tokens": 3, "output_tokens": 4}}
    turn = fold(am.parse_message(obj))
    assert (turn.text, turn.finish_reason, turn.response_id) == ("Hi", "length", "msg_2")
    assert turn.tool_calls == [ToolCall("t", "f", '{"a":1}')]
    assert turn.usage == UsageReport(input=3, output=4, total=7)


# --------------------------------------------------------------------------- embeddings


def _recorded_embeddings(case: str) -> dict[str, Any]:
    line = (DATA / f"{case}.upstream.jsonl").read_text().splitlines()[0]
    return json.loads(line)["body"]


def test_embeddings_body_is_what_the_published_gateway_sent() -> None:
    assert oc.build_embeddings_body("embed-model", "alpha") == _recorded_embeddings("e01_embeddings_string")
    assert json.dumps(oc.build_embeddings_body("embed-model", ["alpha"], 4)) == json.dumps(
        _recorded_embeddings("e04_embeddings_dimensions"))


def test_base64_is_openai_float32_little_endian() -> None:
    floats = [-0.422644, 0.237008, -0.378359, -0.091078, 0.110952, 0.41733, -0.523172, -0.391874]  # e01
    assert oc.to_base64(floats) == "y2TYvjqycj5FuMG+Goe6vc064z1HrNU+mu4Fv7WjyL4="  # e03
    assert oc.from_base64(oc.to_base64(floats)) == pytest.approx(floats, abs=1e-7)


def test_parse_embeddings_orders_by_index_and_decodes_base64() -> None:
    obj = {"data": [{"index": 1, "embedding": [3.0]}, {"index": 0, "embedding": oc.to_base64([1.5])}]}
    assert oc.parse_embeddings(obj, 2) == [[1.5], [3.0]]
    for bad in ({"data": [{"index": 0, "embedding": [1]}]}, {"data": [{"index": 0, "embedding": [1]},
                                                                     {"index": 0, "embedding": [2]}]}, {}):
        with pytest.raises(ProviderError):
            oc.parse_embeddings(bad, 2)


# --------------------------------------------------------------------------- offline


def test_offline_echo() -> None:
    req = ModelRequest(provider="offline", api="offline", model="echo", system="be nice",
                       messages=[ChatMessage(role="user", content="first"), ChatMessage(role="assistant", content="x"),
                                 ChatMessage(role="user", content="what is the weather?")])
    events = offline.echo_events(req)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert 3 <= len(deltas) <= 5
    reply = "".join(d.text for d in deltas)
    assert reply == offline.echo_reply(req)
    assert reply.startswith('You said: "what is the weather?"')
    for needle in ("No model provider is configured", "models.providers.<id>", "baseUrl", "apiKey", "api:",
                   "agents.defaults.model.primary",
                   "openclaw setup --provider-base-url URL --provider-api-key-env VAR --model provider/model"):
        assert needle in reply
    usage = events[-2]
    assert usage == UsageReport(input=2 + 1 + 1 + 4, output=len(reply.split()), total=8 + len(reply.split()))
    assert events[-1].finish_reason == "stop" and events[-1].response_model == "echo"
    assert offline.echo_events(req) == events  # deterministic


def test_offline_quotes_multiline_and_empty_and_mentions_tools() -> None:
    multi = ModelRequest(provider="offline", api="offline", model="echo", tools=[ToolSpec(name="sessions_list")],
                         messages=[ChatMessage(role="user", content=[TextPart("line one"), TextPart("line two")])])
    reply = offline.echo_reply(multi)
    assert reply.startswith("You said:\n> line one\n> line two\n\n") and "sessions_list" in reply
    empty = ModelRequest(provider="offline", api="offline", model="echo")
    assert offline.echo_reply(empty).startswith("You sent no text.")


def test_offline_embeddings() -> None:
    a, b = offline.embed(["alpha", "beta"])
    assert len(a) == offline.EMBED_DIMENSIONS and a != b
    assert math.isclose(math.fsum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert offline.embed("alpha") == [a]
    short = offline.embed("alpha", 5)[0]
    assert len(short) == 5 and math.isclose(math.fsum(x * x for x in short), 1.0, rel_tol=1e-9)
    assert len(offline.embed("alpha", 100)[0]) == 100
    assert "offline" in offline.EMBED_MODEL
    with pytest.raises(ValueError):
        offline.hash_embedding("x", 0)
