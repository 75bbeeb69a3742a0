"""The HTTP routes as an ASGI application, in memory: ``httpx.ASGITransport`` in front of the
gateway's :class:`~gateway_trio.web.WebApp` and an in-process gateway (tests/shell_harness.py).

No sockets and no listener: what is checked here is the application (route table, auth, bodies,
the OpenAI routes on the offline provider); the listener's own duties (heads, deadlines, upgrades,
attribution) are tested over real sockets elsewhere (tests/test_port_bounds.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
import trio.testing
from shell_harness import TOKEN, asgi_http, make_gateway

AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: The OpenAI endpoints are off unless the config turns them on (as published).
CONFIG = {"gateway": {"http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}}}


def _run(tmp_path: Path, body: Callable[[httpx.AsyncClient, Any], Awaitable[None]]) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path, CONFIG)
        async with asgi_http(gw) as http:
            with trio.fail_after(60):
                await body(http, gw)

    trio.run(main)


def test_probes_are_public_and_the_final_404_is_plain_text(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        missing = await http.post("/no/such/route", content=b"{}")  # a GET would get the Control UI's SPA
        assert (missing.status_code, missing.text) == (404, "Not Found")
        assert missing.headers["content-type"].startswith("text/plain")

    _run(tmp_path, body)


def test_openai_routes_need_the_gateway_token(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        refused = await http.get("/v1/models")
        assert refused.status_code == 401
        wrong = await http.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        models = await http.get("/v1/models", headers=AUTH)
        assert models.status_code == 200
        ids = [m["id"] for m in models.json()["data"]]
        assert "openclaw" in ids, ids

    _run(tmp_path, body)


def test_chat_completion_on_the_offline_default_json_and_sse(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        ask = {"model": "openclaw", "messages": [{"role": "user", "content": "hello asgi"}]}
        plain = await http.post("/v1/chat/completions", headers=AUTH, json=ask)
        assert plain.status_code == 200, plain.text
        answer = plain.json()
        assert answer["object"] == "chat.completion"
        assert "hello asgi" in answer["choices"][0]["message"]["content"]
        assert answer["choices"][0]["finish_reason"] == "stop"

        streamed = await http.post("/v1/chat/completions", headers=AUTH, json={**ask, "stream": True})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        frames = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        chunks = [json.loads(f) for f in frames[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert "hello asgi" in text
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        assert finishes == ["stop"]

    _run(tmp_path, body)


def test_bodies_are_bounded_and_must_be_json(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        big = b'{"model":"openclaw","messages":[{"role":"user","content":"' + b"x" * (21 * 1024 * 1024) + b'"}]}'
        too_large = await http.post(
            "/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"}, content=big
        )
        assert too_large.status_code == 413
        bad = await http.post(
            "/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"}, content=b"{not json"
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"

    _run(tmp_path, body)


def test_session_history_and_kill_routes(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        for text in ("first question", "second question"):
            ask = {"model": "openclaw", "messages": [{"role": "user", "content": text}]}
            done = await http.post("/v1/chat/completions", json=ask,
                                   headers={**AUTH, "x-openclaw-session-key": "agent:main:asgi"})
            assert done.status_code == 200, done.text
        whole = await http.get("/sessions/agent:main:asgi/history", headers=AUTH)
        assert whole.status_code == 200, whole.text
        page = whole.json()
        assert page["sessionKey"] == "agent:main:asgi" and page["hasMore"] is False
        assert [m["role"] for m in page["items"]] == ["user", "assistant", "user", "assistant"]
        assert page["items"] == page["messages"]
        last = (await http.get("/sessions/AGENT:MAIN:ASGI/history?limit=1", headers=AUTH)).json()
        assert len(last["items"]) == 1 and last["hasMore"] is True and last["items"][0]["role"] == "assistant"
        before = (await http.get(f"/sessions/agent:main:asgi/history?limit=2&cursor={last['nextCursor']}", headers=AUTH)).json()
        assert [m["role"] for m in before["items"]] == ["assistant", "user"] and before["hasMore"] is True
        assert "second question" in json.dumps(before["items"][1]["content"])

        bad_limit = await http.get("/sessions/agent:main:asgi/history?limit=abc", headers=AUTH)
        assert (bad_limit.status_code, bad_limit.json()["error"]["message"]) == (400, "limit must be a positive integer")
        unknown = await http.get("/sessions/agent:main:nothere/history", headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.json() == {"ok": False, "error": {"type": "not_found", "message": "Session not found: agent:main:nothere"}}
        blank = await http.post("/sessions/%20/kill", headers=AUTH)
        assert (blank.status_code, blank.json()["error"]["message"]) == (400, "invalid session key")
        wrong_method = await http.get("/sessions/agent:main:asgi/kill", headers=AUTH)
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        # As published: the kill route needs operator.admin from the caller's identity; a bare token is refused.
        token_kill = await http.post("/sessions/agent:main:asgi/kill", headers=AUTH)
        assert token_kill.status_code == 403 and token_kill.json()["error"]["details"]["missingScope"] == "operator.admin"
        assert (await http.get("/sessions/agent:main:asgi/history")).status_code == 401

    _run(tmp_path, body)


def test_session_kill_for_an_identity_caller_with_admin(tmp_path: Path) -> None:
    async def main() -> None:
        gw = make_gateway(tmp_path, CONFIG)
        gw.app.secret = msgspec.structs.replace(gw.app.secret, mode="none")
        async with asgi_http(gw) as http:
            with trio.fail_after(60):
                ask = {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}
                made = await http.post("/v1/chat/completions", json=ask, headers={"x-openclaw-session-key": "agent:main:k"})
                assert made.status_code == 200, made.text
                admin = {"x-openclaw-scopes": "operator.admin"}
                killed = await http.post("/sessions/agent:main:k/kill", headers=admin)
                assert (killed.status_code, killed.json()) == (200, {"ok": True, "killed": 0})
                reader = await http.post("/sessions/agent:main:k/kill", headers={"x-openclaw-scopes": "operator.read"})
                assert reader.status_code == 403
                missing = await http.post("/sessions/agent:main:gone/kill", headers=admin)
                assert missing.status_code == 404

    trio.run(main)


@pytest.mark.parametrize("stream", [False, True])
def test_a_stateless_chat_turn_is_one_commit_and_its_run_is_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """A non-streaming chat request is driven in the route's own task: its new session's row and
    its run begun share the turn's commit (one transaction per request), and the run is settled.
    A streamed one too: its run's task folds them in, and the text it read in one go is sent after
    that commit instead of after one of its own. (DEFER_S is lengthened and the loop let go idle
    first: on a loaded machine the 20 ms bound, or a callback still due, would commit them apart.)"""
    from gateway_trio.store import cached

    monkeypatch.setattr(cached, "DEFER_S", 60.0)

    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        ask = {"model": "openclaw", "messages": [{"role": "user", "content": "one commit"}], "stream": stream}
        first = await http.post("/v1/chat/completions", headers=AUTH, json=ask)  # opens the store
        assert first.status_code == 200, first.text
        await trio.testing.wait_all_tasks_blocked()  # its own deferred commit, scheduled before the store was known
        store = gw.agents.store
        for n in range(3):
            with trio.fail_after(10):  # the writer thread idle: writes then run on the loop, in order
                while store._inflight:
                    await trio.sleep(0.01)
            before = store._commits
            got = await http.post("/v1/chat/completions", headers=AUTH, json=ask)
            if stream:
                assert got.status_code == 200 and got.text.endswith("data: [DONE]\n\n"), got.text
                assert "one" in got.text and "commit" in got.text
            else:
                assert got.status_code == 200 and "one commit" in got.json()["choices"][0]["message"]["content"]
            await trio.testing.wait_all_tasks_blocked()
            assert store._commits == before + 1, (n, store._commits - before)
            assert not store.deferred
        assert gw.app.runs.active_runs() == []

    _run(tmp_path, body)


def test_a_quick_streamed_answer_is_two_writes_the_opening_and_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deltas a route takes once the run has settled go out with the end, in one write: a
    quick streamed answer is the opening write (head and role frame, before the model answers)
    and one more; the bytes are the same frames in the same order."""
    from gateway_trio.web.request import Request

    writes: list[tuple[str, bytes]] = []
    real_write, real_end = Request.write, Request.end

    async def write(self: Request, data: bytes) -> None:
        writes.append(("write", data))
        await real_write(self, data)

    async def end(self: Request, data: bytes = b"") -> None:
        writes.append(("end", data))
        await real_end(self, data)

    monkeypatch.setattr(Request, "write", write)
    monkeypatch.setattr(Request, "end", end)

    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        ask = {"model": "openclaw", "messages": [{"role": "user", "content": "two writes"}], "stream": True}
        for _ in range(3):
            writes.clear()
            got = await http.post("/v1/chat/completions", headers=AUTH, json=ask)
            assert got.status_code == 200
            kinds = [k for k, _ in writes]
            assert kinds == ["write", "end"], kinds
            assert b'"role":"assistant"' in writes[0][1] and b"two" in writes[1][1] and writes[1][1].endswith(b"data: [DONE]\n\n")
            assert got.content == b"".join(d for _, d in writes)

    _run(tmp_path, body)


def test_a_non_streaming_answer_is_written_once_the_run_has_settled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer goes out after the run has settled: a client slow to read it holds no run, nor
    its session's lane or a concurrency slot, while the write waits for its socket."""
    from gateway_trio.web.request import Request

    seen: list[int] = []
    real_answer = Request.answer
    the: dict[str, Any] = {}

    async def answer(self: Request, *args: Any, **kwargs: Any) -> None:
        seen.append(len(the["gw"].app.runs.active_runs()))
        await real_answer(self, *args, **kwargs)

    monkeypatch.setattr(Request, "answer", answer)

    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        the["gw"] = gw
        chat = {"model": "openclaw", "messages": [{"role": "user", "content": "settled first"}]}
        for route, ask in (("/v1/chat/completions", chat), ("/v1/responses", {"model": "openclaw", "input": "settled first"})):
            got = await http.post(route, headers=AUTH, json=ask)
            assert got.status_code == 200 and "settled first" in got.text
            assert seen[-1] == 0, seen

    _run(tmp_path, body)


def test_a_streamed_answer_ends_once_the_turn_is_written_before_the_run_settles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At ``TurnWritten`` a streaming route's watch gets the result and the route writes its end
    (text, finish frame, ``[DONE]``) before the run's final events are built; then it settles."""
    from gateway_trio.web.request import Request

    seen: list[int] = []
    real_end = Request.end
    the: dict[str, Any] = {}

    async def end(self: Request, data: bytes = b"") -> None:
        seen.append(len(the["gw"].app.runs.active_runs()))
        await real_end(self, data)

    monkeypatch.setattr(Request, "end", end)

    async def body(http: httpx.AsyncClient, gw: Any) -> None:
        the["gw"] = gw
        for route, ask in (
            ("/v1/chat/completions", {"model": "openclaw", "messages": [{"role": "user", "content": "ends early"}], "stream": True}),
            ("/v1/responses", {"model": "openclaw", "input": "ends early", "stream": True}),
        ):
            for _ in range(3):
                got = await http.post(route, headers=AUTH, json=ask)
                assert got.status_code == 200 and "early" in got.text, got.text
                assert seen[-1] == 1, seen  # the run not settled when the end was written
                await trio.testing.wait_all_tasks_blocked()
                assert gw.app.runs.active_runs() == []

    _run(tmp_path, body)
