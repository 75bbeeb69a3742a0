"""The Trio adapters against the scripted upstream over real HTTP on loopback: streaming, tool calls,
usage, each error kind, idle timeouts, drops, cancellation closing the upstream socket, Anthropic,
the offline provider, embeddings, retries and fallbacks. Every wait is bounded."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
from upstream import Drop, Error, Hang, ScriptedUpstream, Text, ToolCalls

from gateway_core.providers import (
    ChatMessage,
    Compat,
    EmbeddingsRequest,
    ModelRequest,
    ProviderError,
    StreamEnd,
    TextDelta,
    ToolCall,
    ToolSpec,
    TurnBuilder,
    UsageReport,
    offline,
)
from gateway_core.providers import openai_completions as oc
from gateway_core.providers.retry import RetryPolicy, RetryRule
from gateway_trio.providers import Attempt, OfflineAdapter, ProviderHub, adapter_for, stream_with_failover

KEY = "sk-upstream-test-key"
BOUND = 20.0  # no test may take longer than this


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(api_key=KEY) as server:
        yield server


def run(fn: Callable[[ProviderHub], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        with trio.fail_after(BOUND):
            async with ProviderHub() as hub:
                return await fn(hub)

    return trio.run(main)


def req(up: ScriptedUpstream, text: str = "hello there", **kw: Any) -> ModelRequest:
    base: dict[str, Any] = {
        "provider": "upstream", "api": "openai-completions", "model": "scripted", "base_url": up.base_url,
        "api_key": KEY, "messages": [ChatMessage(role="user", content=text)], "max_tokens": 4096,
        "idle_timeout_s": 5.0,
    }
    base.update(kw)
    return ModelRequest(**base)


def anthropic_req(up: ScriptedUpstream, text: str = "hello claude", **kw: Any) -> ModelRequest:
    kw.setdefault("base_url", up.root)
    return req(up, text, provider="anth", api="anthropic-messages", model="claude-test", **kw)


async def collect(hub: ProviderHub, request: ModelRequest) -> list[Any]:
    async with hub.stream(request) as events:
        return [e async for e in events]


async def failure(hub: ProviderHub, request: ModelRequest) -> tuple[ProviderError, list[Any]]:
    seen: list[Any] = []
    with pytest.raises(ProviderError) as err:
        async with hub.stream(request) as events:
            async for event in events:
                seen.append(event)
    return err.value, seen


# --------------------------------------------------------------------------- openai-completions


def test_streamed_text_usage_and_what_the_upstream_got(up: ScriptedUpstream) -> None:
    request = req(up, system="SYS", tools=[ToolSpec(name="sessions_list", parameters={"type": "object"})])
    events = run(lambda hub: collect(hub, request))
    assert [type(e) for e in events] == [TextDelta] * 4 + [UsageReport, StreamEnd]
    assert "".join(e.text for e in events[:4]) == "upstream-reply-1: hello there"
    assert events[4].output > 0 and events[4].total == events[4].input + events[4].output
    assert events[5] == StreamEnd(finish_reason="stop", response_id="chatcmpl-up1", response_model="scripted")
    (got,) = up.chat_requests()
    assert got.path == "/v1/chat/completions" and got.credential == "ok"
    assert got.headers["authorization"] == f"Bearer <redacted len={len(KEY)}>"
    assert json.dumps(got.body) == json.dumps(oc.build_chat_body(request))  # byte-for-byte, key order included


def test_the_upstream_sees_our_user_agent_and_no_compression_asked(up: ScriptedUpstream) -> None:
    run(lambda hub: collect(hub, req(up)))
    headers = up.chat_requests()[0].headers
    assert headers["user-agent"] == "openclaw-gateway-py" and headers["accept-encoding"] == "identity"
    assert headers["content-type"] == "application/json" and headers["host"] == f"127.0.0.1:{up.port}"


def test_tool_call_fragments_are_assembled(up: ScriptedUpstream) -> None:
    up.script(ToolCalls([("get_weather", '{"city":"Paris","unit":"C"}'), ("ls", '{"path":"."}')], fragments=5,
                        text="checking"))
    turn = run(lambda hub: hub.complete(req(up)))
    assert turn.text == "checking" and turn.finish_reason == "tool_calls"
    assert turn.tool_calls == [ToolCall("callup1", "get_weather", '{"city":"Paris","unit":"C"}'),
                               ToolCall("callup1_1", "ls", '{"path":"."}')]


def test_tool_call_marker_uses_the_tool_call_function_when_offered(up: ScriptedUpstream) -> None:
    tools = [ToolSpec(name="tool_call"), ToolSpec(name="exec")]
    turn = run(lambda hub: hub.complete(req(up, "weather please TOOLCALL:get_weather", tools=tools)))
    assert turn.tool_calls == [ToolCall("callup1", "tool_call", '{"id":"get_weather","args":{"city":"Paris"}}')]
    follow = req(up, "ignored", tools=tools, messages=[
        ChatMessage(role="user", content="weather please TOOLCALL:get_weather"),
        ChatMessage(role="assistant", tool_calls=turn.tool_calls),
        ChatMessage(role="tool", content='{"temp_c": 21}', tool_call_id="callup1"),
        ChatMessage(role="user", content="Tool:callup1: {\"temp_c\": 21}")])
    again = run(lambda hub: hub.complete(follow))
    assert again.text == 'upstream-reply-2: tool result seen: Tool:callup1: {"temp_c": 21}'


def test_usage_left_out_when_the_model_says_it_cannot_stream_it(up: ScriptedUpstream) -> None:
    request = req(up, compat=Compat(supports_usage_in_streaming=False))
    events = run(lambda hub: collect(hub, request))
    assert not any(isinstance(e, UsageReport) for e in events)
    assert "stream_options" not in up.chat_requests()[0].body


def test_non_streamed_request_gives_the_same_turn(up: ScriptedUpstream) -> None:
    turn = run(lambda hub: hub.complete(req(up, stream=False)))
    assert turn.text == "upstream-reply-1: hello there" and turn.usage is not None and turn.finish_reason == "stop"
    assert "stream" not in up.chat_requests()[0].body


def test_reasoning_is_separate_from_text(up: ScriptedUpstream) -> None:
    up.script(Text("answer", deltas=2, reasoning="because"))
    turn = run(lambda hub: hub.complete(req(up)))
    assert (turn.text, turn.reasoning) == ("answer", "because")


@pytest.mark.parametrize(
    ("behaviour", "kind", "wire"),
    [
        (Error(400, "scripted bad request: unsupported parameter", "invalid_request_error", "bad_param"), "format",
         "400 scripted bad request: unsupported parameter"),
        (Error(401, "scripted invalid api key", "authentication_error", "invalid_api_key"), "auth",
         "401 scripted invalid api key"),
        (Error(429, "scripted rate limit: slow down; Retry-After: 1 seconds", retry_after="7"), "rate_limit",
         "429 scripted rate limit: slow down; Retry-After: 1 seconds"),
        (Error(500, "scripted upstream failure"), "server_error", "500 scripted upstream failure"),
        (Error(503, body=b"<html>down</html>", content_type="text/html"), "server_error", "503 <html>down</html>"),
        (Error(404, "The model `scripted` does not exist"), "not_found", "404 The model `scripted` does not exist"),
    ],
)
def test_error_answers(up: ScriptedUpstream, behaviour: Error, kind: str, wire: str) -> None:
    up.script(behaviour)
    err, seen = run(lambda hub: failure(hub, req(up)))
    assert (err.kind, err.wire_message, err.provider, err.model) == (kind, wire, "upstream", "scripted")
    assert seen == []
    if behaviour.retry_after:
        assert err.retry_after_s == 7.0


def test_wrong_key_is_an_auth_error(up: ScriptedUpstream) -> None:
    err, _ = run(lambda hub: failure(hub, req(up, api_key="sk-wrong")))
    assert err.kind == "auth" and err.status == 401
    assert up.chat_requests()[0].credential == "wrong"


def test_idle_timeout_before_any_byte(up: ScriptedUpstream) -> None:
    up.script(Hang())
    err, seen = run(lambda hub: failure(hub, req(up, idle_timeout_s=0.5)))
    assert (err.kind, err.message) == ("timeout", "LLM idle timeout (0.5s): no response from model")
    assert seen == []
    # The upstream sees the request closed when the client gives up.
    assert up.wait_for(lambda u: bool(u.outcomes) and u.outcomes[0].client_disconnected, timeout=10)


def test_idle_timeout_mid_stream(up: ScriptedUpstream) -> None:
    up.script(Text("one two three four", deltas=4, stall_after=2))
    err, seen = run(lambda hub: failure(hub, req(up, idle_timeout_s=0.5)))
    assert err.kind == "timeout" and [type(e) for e in seen] == [TextDelta, TextDelta]


def test_connection_dropped_mid_stream(up: ScriptedUpstream) -> None:
    up.script(Drop(after_deltas=2))
    err, seen = run(lambda hub: failure(hub, req(up)))
    assert err.kind == "network" and "dropped" in err.message and len(seen) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_refused_and_bad_base_url() -> None:
    port = _closed_port()
    request = ModelRequest(provider="gone", api="openai-completions", model="m", base_url=f"http://127.0.0.1:{port}/v1",
                           messages=[ChatMessage(role="user", content="hi")])
    err, _ = run(lambda hub: failure(hub, request))
    assert err.kind == "network" and "cannot connect" in err.message and err.provider == "gone"
    bad = ModelRequest(provider="bad", api="openai-completions", model="m", base_url="ftp://nowhere/v1")
    err, _ = run(lambda hub: failure(hub, bad))
    assert err.kind == "config"


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` (bounded) while the hub, and so its connection pool, stays open."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return True
    return False


def test_cancellation_closes_the_upstream_socket_at_once(up: ScriptedUpstream) -> None:
    up.script(Text("".join(f"tick{i} " for i in range(40)), deltas=40, delay_s=0.2))

    async def body(hub: ProviderHub) -> tuple[list[Any], bool]:
        seen: list[Any] = []
        with trio.CancelScope() as scope:
            async with hub.stream(req(up)) as events:
                async for event in events:
                    seen.append(event)
                    scope.cancel()
        assert scope.cancelled_caught
        # Still inside the hub: the pool is open, so only the cancellation can have closed the socket.
        # The upstream notices on its next poll (50 ms); 5 s is a generous bound.
        return seen, await until(lambda: bool(up.outcomes))

    seen, closed = run(body)
    assert len(seen) == 1 and closed
    outcome = up.outcomes[0]
    assert outcome.client_disconnected and outcome.chunks_sent < 10


def test_cancellation_during_a_hang_closes_the_socket(up: ScriptedUpstream) -> None:
    up.script(Hang())

    async def body(hub: ProviderHub) -> bool:
        with trio.move_on_after(0.3):
            await collect(hub, req(up, idle_timeout_s=30))
        return await until(lambda: bool(up.outcomes) and up.outcomes[0].client_disconnected)

    assert run(body)


def test_idle_timeout_closes_the_socket_while_the_hub_lives(up: ScriptedUpstream) -> None:
    up.script(Hang())

    async def body(hub: ProviderHub) -> bool:
        with pytest.raises(ProviderError):
            await collect(hub, req(up, idle_timeout_s=0.3))
        return await until(lambda: bool(up.outcomes) and up.outcomes[0].client_disconnected)

    assert run(body)


def test_keep_alive_reuses_the_connection(up: ScriptedUpstream) -> None:
    async def body(hub: ProviderHub) -> None:
        for _ in range(3):
            await collect(hub, req(up))

    run(body)
    peers = {r.peer for r in up.chat_requests()}
    assert len(up.chat_requests()) == 3 and len(peers) == 1


def test_consumer_exceptions_pass_through_untouched(up: ScriptedUpstream) -> None:
    async def body(hub: ProviderHub) -> None:
        async with hub.stream(req(up)) as events:
            async for _ in events:
                raise KeyError("mine")

    with pytest.raises(KeyError):
        run(body)


# --------------------------------------------------------------------------- anthropic-messages


def test_anthropic_streaming(up: ScriptedUpstream) -> None:
    request = anthropic_req(up, system="be brief")
    events = run(lambda hub: collect(hub, request))
    builder = TurnBuilder()
    for e in events:
        builder.feed(e)
    turn = builder.result()
    assert turn.text == "upstream-reply-1: hello claude" and turn.finish_reason == "stop"
    assert turn.response_id == "msg_up1" and turn.usage is not None and turn.usage.output > 0
    (got,) = up.chat_requests()
    assert got.path == "/v1/messages" and got.credential == "ok"
    assert got.headers["x-api-key"] == f"<redacted len={len(KEY)}>" and got.headers["anthropic-version"] == "2023-06-01"
    assert got.body["system"] == "be brief" and got.body["stream"] is True and got.body["max_tokens"] == 4096


def test_anthropic_tool_use_and_errors(up: ScriptedUpstream) -> None:
    up.script(ToolCalls([("get_weather", '{"city":"Paris"}')], fragments=3),
              Error(429, "slow down", "rate_limit_error", retry_after="2"))
    turn = run(lambda hub: hub.complete(anthropic_req(up)))
    assert turn.tool_calls == [ToolCall("toolu_up1_0", "get_weather", '{"city":"Paris"}')]
    assert turn.finish_reason == "tool_calls"
    err, _ = run(lambda hub: failure(hub, anthropic_req(up)))
    assert (err.kind, err.wire_message, err.error_type, err.retry_after_s) == (
        "rate_limit", "429 slow down", "rate_limit_error", 2.0)


def test_anthropic_whole_answer_and_base_url_with_v1(up: ScriptedUpstream) -> None:
    turn = run(lambda hub: hub.complete(anthropic_req(up, stream=False, base_url=up.base_url)))
    assert turn.text == "upstream-reply-1: hello claude"
    assert up.chat_requests()[0].path == "/v1/messages"


def test_anthropic_timeout_and_drop(up: ScriptedUpstream) -> None:
    up.script(Hang(), Drop(after_deltas=1))
    err, _ = run(lambda hub: failure(hub, anthropic_req(up, idle_timeout_s=0.5)))
    assert err.kind == "timeout"
    err, seen = run(lambda hub: failure(hub, anthropic_req(up)))
    assert err.kind == "network" and len(seen) == 1


# --------------------------------------------------------------------------- offline, registry


def test_offline_provider_streams_through_the_hub() -> None:
    request = ModelRequest(provider="offline", api="offline", model="echo",
                           messages=[ChatMessage(role="user", content="hi there")])

    async def body(hub: ProviderHub) -> tuple[list[Any], Any]:
        events = await collect(hub, request)
        vec = await hub.embed(EmbeddingsRequest(provider="offline", api="offline", model=offline.EMBED_MODEL,
                                                inputs=["a", "b"], dimensions=16))
        return events, vec

    events, vectors = run(body)
    assert events == offline.echo_events(request)
    assert vectors.model == "offline-sha256" and [len(v) for v in vectors.vectors] == [16, 16]


def test_offline_stream_honours_cancellation() -> None:
    async def body(hub: ProviderHub) -> int:
        seen = 0
        with trio.CancelScope() as scope:
            async with OfflineAdapter().stream(ModelRequest(provider="offline", api="offline", model="echo")) as ev:
                async for _ in ev:
                    seen += 1
                    scope.cancel()
        return seen

    assert run(body) == 1


def test_adapter_registry() -> None:
    assert adapter_for("openai-completions").api == "openai-completions"
    assert adapter_for("anthropic-messages").api == "anthropic-messages"
    assert adapter_for("offline") is adapter_for("offline-echo") is OfflineAdapter
    with pytest.raises(ProviderError) as err:
        adapter_for("google-generative-ai")
    assert err.value.kind == "config" and "google-generative-ai" in err.value.message


# --------------------------------------------------------------------------- embeddings


def test_embeddings_over_http(up: ScriptedUpstream) -> None:
    async def body(hub: ProviderHub) -> Any:
        one = await hub.embed(EmbeddingsRequest(provider="upstream", api="openai-completions", model="embed-model",
                                                inputs="alpha", base_url=up.base_url, api_key=KEY))
        four = await hub.embed(EmbeddingsRequest(provider="upstream", api="openai-completions", model="embed-model",
                                                 inputs=["alpha", "beta"], dimensions=4, base_url=up.base_url,
                                                 api_key=KEY))
        return one, four

    one, four = run(body)
    bodies = [r.body for r in up.requests if r.path == "/v1/embeddings"]
    assert bodies == [{"model": "embed-model", "input": ["alpha"]},
                      {"model": "embed-model", "input": ["alpha", "beta"], "dimensions": 4}]
    assert len(one.vectors) == 1 and len(one.vectors[0]) == 8 and one.prompt_tokens == 1
    assert [len(v) for v in four.vectors] == [4, 4] and four.vectors[0] == one.vectors[0][:4]
    assert oc.from_base64(oc.to_base64(one.vectors[0])) == pytest.approx(one.vectors[0], abs=1e-6)


def test_embeddings_errors(up: ScriptedUpstream) -> None:
    request = EmbeddingsRequest(provider="upstream", api="openai-completions", model="embed-model", inputs="x",
                                base_url=up.base_url, api_key="sk-wrong")
    with pytest.raises(ProviderError) as err:
        run(lambda hub: hub.embed(request))
    assert (err.value.kind, err.value.status, err.value.provider) == ("auth", 401, "upstream")
    with pytest.raises(ProviderError) as err:
        run(lambda hub: hub.embed(EmbeddingsRequest(provider="a", api="anthropic-messages", model="m", inputs="x")))
    assert err.value.kind == "config"


# --------------------------------------------------------------------------- retries and fallbacks

FAST = RetryPolicy(rules={
    "server_error": RetryRule(max_retries=2, base_s=0.01, cap_s=0.05),
    "rate_limit": RetryRule(max_retries=2, base_s=0.01, cap_s=0.05),
    "timeout": RetryRule(max_retries=1, base_s=0.01, cap_s=0.05),
}, max_retry_after_s=0.5, budget_s=10.0, cooldown_s=60.0)


async def through_failover(hub: ProviderHub, candidates: list[ModelRequest],
                           attempts: list[Attempt] | None = None) -> tuple[str, str]:
    text = []
    async with stream_with_failover(hub, candidates, policy=FAST, jitter=lambda: 0.5,
                                    on_attempt=(attempts.append if attempts is not None else None)) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
        return "".join(text), events.request.ref


def test_retries_then_success(up: ScriptedUpstream) -> None:
    up.script(Error(500, "boom"), Error(429, "slow", retry_after="0.05"))
    attempts: list[Attempt] = []
    text, ref = run(lambda hub: through_failover(hub, [req(up)], attempts))
    assert text == "upstream-reply-3: hello there" and ref == "upstream/scripted"
    assert [(a.error.kind, a.decision.action) for a in attempts] == [("server_error", "retry"), ("rate_limit", "retry")]
    assert attempts[1].decision.delay_s == 0.05  # Retry-After honoured


def test_retries_exhausted_fail_over_to_the_fallback(up: ScriptedUpstream) -> None:
    up.script(Error(500, "boom"), Error(500, "boom"), Error(500, "boom"))
    fallback = req(up, model="scripted-b")
    attempts: list[Attempt] = []
    text, ref = run(lambda hub: through_failover(hub, [req(up), fallback], attempts))
    assert ref == "upstream/scripted-b" and text.startswith("upstream-reply-4")
    assert [a.decision.action for a in attempts] == ["retry", "retry", "failover"]
    assert [r.body["model"] for r in up.chat_requests()] == ["scripted"] * 3 + ["scripted-b"]


def test_auth_failure_cools_the_credential_down(up: ScriptedUpstream) -> None:
    up.script(Error(401, "scripted invalid api key"))
    other = req(up, provider="second", model="scripted-b")

    async def body(hub: ProviderHub) -> tuple[Any, ...]:
        first = await through_failover(hub, [req(up), other])
        with pytest.raises(ProviderError) as err:
            await through_failover(hub, [req(up)])
        calls = len(up.chat_requests())
        again = await through_failover(hub, [req(up), other])
        return first, err.value, calls, again

    first, err, calls, again = run(body)
    assert first[1] == "second/scripted-b"
    assert err.kind == "cooldown" and err.message.startswith('Inline API key for provider "upstream" is temporarily')
    assert calls == 2  # the cooled-down provider was not called again
    assert again[1] == "second/scripted-b" and len(up.chat_requests()) == 3


def test_no_retry_once_output_has_started(up: ScriptedUpstream) -> None:
    up.script(Drop(after_deltas=2))
    with pytest.raises(ProviderError) as err:
        run(lambda hub: through_failover(hub, [req(up), req(up, model="scripted-b")]))
    assert err.value.kind == "network" and len(up.chat_requests()) == 1


def test_bad_request_fails_without_retry(up: ScriptedUpstream) -> None:
    up.script(Error(400, "unsupported parameter"))
    attempts: list[Attempt] = []
    with pytest.raises(ProviderError) as err:
        run(lambda hub: through_failover(hub, [req(up)], attempts))
    assert err.value.kind == "format" and len(up.chat_requests()) == 1
    assert attempts[0].decision.message == "LLM request failed: provider rejected the request schema or tool payload."


def test_timeouts_retry_once_then_give_the_published_message(up: ScriptedUpstream) -> None:
    up.script(Hang(), Hang())
    attempts: list[Attempt] = []
    with pytest.raises(ProviderError) as err:
        run(lambda hub: through_failover(hub, [req(up, idle_timeout_s=0.3)], attempts))
    assert err.value.kind == "timeout" and len(up.chat_requests()) == 2
    assert attempts[-1].decision.message.startswith("Request failed after repeated internal retries.")


def test_cancel_during_the_retry_sleep_stops_retrying(up: ScriptedUpstream) -> None:
    up.script(Error(429, "slow", retry_after="0.5"))
    slow = RetryPolicy(rules={"rate_limit": RetryRule(max_retries=3, base_s=0.01)}, max_retry_after_s=5.0)

    async def consume(hub: ProviderHub) -> None:
        async with stream_with_failover(hub, [req(up)], policy=slow, jitter=lambda: 0.5) as events:
            async for _ in events:
                pass

    async def body(hub: ProviderHub) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, hub)
            with trio.fail_after(30):  # the first attempt reached the upstream (however slow the machine)
                while not up.chat_requests():
                    await trio.sleep(0.01)
            await trio.sleep(0.1)  # its 429 is answered: the hub is in the retry's sleep (0.5 s)
            nursery.cancel_scope.cancel()
        await trio.sleep(1.0)  # past the retry's due time: nothing more may reach the upstream

    run(body)
    assert len(up.chat_requests()) == 1


# --------------------------------------------------------------------------- the scripted upstream itself


def test_upstream_default_reply_follows_the_recordings(up: ScriptedUpstream) -> None:
    recorded_user = ("[Sat 2026-11-21 14:06 UTC] hello gateway\n\nRuntime: agent=main | session=agent:main:openai:x | "
                     "model=upstream/scripted | channel=webchat")
    internal = [{"type": "text", "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nnone\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]
    from gateway_core.providers import TextPart

    request = req(up, messages=[ChatMessage(role="user", content=recorded_user),
                                ChatMessage(role="user", content=[TextPart(p["text"]) for p in internal])])
    turn = run(lambda hub: hub.complete(request))
    assert turn.text == "upstream-reply-1: hello gateway"
    for marker, kind in (("ERR500", "server_error"), ("ERR429", "rate_limit"), ("ERR401", "auth"), ("ERR400", "format")):
        err, _ = run(lambda hub, m=marker: failure(hub, req(up, f"please {m}")))
        assert err.kind == kind
        if marker == "ERR429":
            assert err.retry_after_s == 1.0
    models = up.requests  # GET /v1/models is served too
    assert all(r.credential == "ok" for r in models)
