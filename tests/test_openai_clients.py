"""Chat UIs as they talk to the gateway: Open WebUI, LibreChat, LobeChat (against ours and the published one).

Neither the spec nor the recordings capture these clients, so their request sequences are rebuilt
from their own sources and setup docs (the published docs name them: "Most Open WebUI, LobeChat,
and LibreChat integrations probe ``/v1/models`` first"):

- **Open WebUI** (Python, aiohttp): ``GET /models`` when the connection is saved and when models
  are listed; each chat message is ``POST /chat/completions`` with the *whole* conversation,
  ``stream: true``, ``stream_options.include_usage`` when the model's usage capability is on, no
  ``user``; with ``ENABLE_FORWARD_USER_INFO_HEADERS`` the ``X-OpenWebUI-User-*`` and
  ``X-OpenWebUI-Chat-Id`` headers. After the first answer, non-streamed helper calls whose prompt
  starts ``### Task:`` (title, tags, follow-ups).
- **LibreChat** (custom endpoint, the OpenAI JS SDK): ``GET /models`` (``models.fetch``), chat
  streamed with ``stream_options.include_usage`` and ``user`` = the LibreChat account id (a
  24-hex ObjectId), the whole conversation each time; a title call (``titleConvo``) with the same
  ``user``. Endpoint ``headers`` may carry ``{{LIBRECHAT_BODY_CONVERSATIONID}}``.
- **LobeChat** (the OpenAI JS SDK, server side): ``GET /models`` to fetch the list; chat streamed
  with ``stream_options.include_usage`` and its sampling defaults (``temperature: 1``,
  ``top_p: 1``, both penalties ``0``); a streamed topic-summary call after the first answer.

Sessions (http-agents-channels.md §2.3, observed §3.4): without ``user`` every request is its own
session and the UI's history arrives flattened in one user message; ``user`` (case-folded) and
``x-openclaw-session-key`` select a stored session, whose transcript is replayed to the model
before the new turn, and which survives a restart (it is on disk). Ours adds an opt-in
``sessionMode: "conversation"`` (gateway_core/openai/conversation.py) for UIs that send no
``user``; those tests run on ours only. A stored turn shows up upstream as an ``assistant``-role
message; a client-sent one only inside the flattened user text: that is how these tests tell
replayed history from the client's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_gateways import KINDS, TOKEN, Running, running_gateway, sse_data
from upstream import Recorded, ScriptedUpstream, last_user_text, reply_line

#: The OpenAI JS SDK's own headers (LibreChat, LobeChat), as the gateway's upstream log shows them (§1.1).
JS_SDK = {
    "accept": "application/json", "user-agent": "OpenAI/JS 4.104.0", "x-stainless-lang": "js",
    "x-stainless-package-version": "4.104.0", "x-stainless-os": "Linux", "x-stainless-arch": "x64",
    "x-stainless-runtime": "node", "x-stainless-runtime-version": "v22.16.0", "x-stainless-retry-count": "0",
}
OPEN_WEBUI = {"user-agent": "Python/3.11 aiohttp/3.11.18", "accept": "*/*", "accept-encoding": "gzip, deflate"}
LIBRECHAT_USER = "665f1c2ab7e4d90012a3b4c5"
TITLE_TASK = ("### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
              "### Output:\nJSON format: { \"title\": \"your concise title here\" }\n### Chat History:\n<chat_history>\n")
TAGS_TASK = "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history.\n### Chat History:\n<chat_history>\n"
FOLLOW_UPS_TASK = "### Task:\nSuggest 3-5 relevant follow-up questions or prompts.\n### Chat History:\n<chat_history>\n"
LIBRECHAT_TITLE = ("Please generate a concise, 5-word-or-less title for the conversation, using its same language, "
                   "with no punctuation. Apply title case conventions appropriate for the language. Never directly "
                   "mention the language name or the word \"title\"\n\n||>User:\n\"{user}\"\n||>Response:\n\"{reply}\"\n\n"
                   "||>Title:")
LOBE_SUMMARY_SYSTEM = "You are a professional conversation summarizer. Summarize the topic in at most 10 words."


@pytest.fixture(scope="module", params=KINDS)
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp(f"clients-{request.param}")
    with running_gateway(request.param, tmp) as running:
        yield running


class Client:
    """One UI's HTTP client: its headers on every request, the gateway token as its API key."""

    def __init__(self, gw: Running, headers: dict[str, str]) -> None:
        self.gw = gw
        self.http = httpx.Client(base_url=gw.base_url, timeout=90,
                                 headers={**headers, "authorization": f"Bearer {TOKEN}"})

    def models(self) -> list[str]:
        r = self.http.get("/models")
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["data"]]

    def chat(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        """POST /chat/completions; the answer's text (streamed or not), checking the envelope."""
        r = self.http.post("/chat/completions", json=body, headers=headers or {})
        assert r.status_code == 200, r.text
        if not body.get("stream"):
            answer = r.json()
            assert answer["object"] == "chat.completion" and answer["choices"][0]["finish_reason"] == "stop"
            return answer["choices"][0]["message"]["content"]
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        frames = sse_data(r.text)
        assert frames[-1] == "[DONE]"
        chunks = [json.loads(f) for f in frames[:-1]]
        assert not any("error" in c for c in chunks), chunks
        if (body.get("stream_options") or {}).get("include_usage"):
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])

    def close(self) -> None:
        self.http.close()


def turns(up: ScriptedUpstream, marker: str) -> list[Recorded]:
    """The upstream requests whose current message (its last line, as the scripted upstream reads it) ends with ``marker``."""
    return [r for r in up.chat_requests() if isinstance(r.body, dict) and reply_line(last_user_text(r.body)).endswith(marker)]


def only_turn(up: ScriptedUpstream, marker: str) -> Recorded:
    found = turns(up, marker)
    assert len(found) == 1, f"{len(found)} upstream requests carry {marker!r}"
    return found[0]


def replayed(rec: Recorded) -> list[str]:
    """The stored assistant turns replayed to the model (``assistant``-role message texts)."""
    out = []
    for msg in rec.body.get("messages") or []:
        if msg.get("role") == "assistant":
            content = msg.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            out.append(content or "")
    return out


def stored_text(rec: Recorded, marker: str) -> str:
    """The messages before the one carrying ``marker`` (system prompt excluded): the stored history."""
    msgs = rec.body.get("messages") or []
    at = max(i for i, m in enumerate(msgs) if marker in json.dumps(m.get("content")))
    return json.dumps([m for m in msgs[:at] if m.get("role") != "system"])


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def history_block(*pairs: tuple[str, str]) -> str:
    return "".join(f"USER: {u}\nASSISTANT: {a}\n" for u, a in pairs) + "</chat_history>"


# --------------------------------------------------------------------------- Open WebUI


def test_open_webui_sequence(gw: Running) -> None:
    """Probe, two streamed turns with the whole history, three ``### Task:`` helpers: every request
    is its own session (published default), the history reaches the model flattened, the helpers
    leave no trace in the conversation."""
    forwarded = {"x-openwebui-user-name": "Ada", "x-openwebui-user-id": "8d0c6f4e-1f5a-4c61-9f55-2b6a7e0f1c11",
                 "x-openwebui-user-email": "ada@example.invalid", "x-openwebui-user-role": "admin",
                 "x-openwebui-chat-id": f"owui-chat-{gw.kind}"}
    c = Client(gw, {**OPEN_WEBUI, **forwarded})
    try:
        assert "openclaw/default" in c.models()
        q1 = f"owui first question {gw.kind}"
        base = {"model": "openclaw/default", "stream": True, "stream_options": {"include_usage": True}}
        a1 = c.chat({**base, "messages": [user(q1)]})
        assert a1.endswith(q1)
        tasks = [TITLE_TASK, TAGS_TASK, FOLLOW_UPS_TASK]
        for task in tasks:
            got = c.chat({"model": "openclaw/default", "stream": False,
                          "messages": [user(task + history_block((q1, a1)))]})
            assert got.endswith("</chat_history>")
        q2 = f"owui second question {gw.kind}"
        a2 = c.chat({**base, "messages": [user(q1), assistant(a1), user(q2)]})
        assert a2.endswith(q2)
    finally:
        c.close()
    up = gw.upstream
    two = only_turn(up, q2)
    assert replayed(two) == [], "a request without `user` ran in a stored session"
    current = last_user_text(two.body)
    assert "[Chat messages since your last reply - for context]" in current
    assert f"User: {q1}\nAssistant: {a1}" in current and f"[Current message - respond to this]\nUser: {q2}" in current
    for rec in [only_turn(up, q1), *[r for r in up.chat_requests() if "### Task:" in last_user_text(r.body)]]:
        assert replayed(rec) == []
    assert "### Task:" not in json.dumps(two.body["messages"])


# --------------------------------------------------------------------------- LibreChat


def test_librechat_sequence(gw: Running) -> None:
    """LibreChat's ``user`` is its account id: the published rule makes that one session for every
    conversation of the account, title calls included (the docs warn against account-level ids).
    An endpoint header ``x-openclaw-session-key: librechat-{{conversationId}}`` keeps each
    conversation in its own session instead."""
    c = Client(gw, JS_SDK)
    oid = f"{LIBRECHAT_USER[:-2]}{'0a' if gw.kind == 'ours' else '0b'}"
    base = {"model": "openclaw", "stream": True, "stream_options": {"include_usage": True}, "user": oid}
    try:
        assert c.models()[0] == "openclaw"
        q1 = f"librechat first {gw.kind}"
        a1 = c.chat({**base, "messages": [user(q1)]})
        title = c.chat({"model": "openclaw", "stream": False, "user": oid, "temperature": 0.2,
                        "messages": [user(LIBRECHAT_TITLE.format(user=q1, reply=a1))]})
        assert title.startswith("upstream-reply-")
        q2 = f"librechat second {gw.kind}"
        c.chat({**base, "messages": [user(q1), assistant(a1), user(q2)]})
        other = f"librechat other conversation {gw.kind}"
        c.chat({**base, "messages": [user(other)]})

        conv = f"6a1b2c3d-{gw.kind}"
        header = {"x-openclaw-session-key": f"librechat-{conv}"}
        k1 = f"librechat keyed first {gw.kind}"
        b1 = c.chat({**base, "messages": [user(k1)]}, header)
        k2 = f"librechat keyed second {gw.kind}"
        c.chat({**base, "messages": [user(k1), assistant(b1), user(k2)]}, header)
    finally:
        c.close()
    up = gw.upstream
    assert a1 in replayed(only_turn(up, q2)), "the same `user` did not continue the session"
    other_rec = only_turn(up, other)
    assert a1 in replayed(other_rec) and "||>Title:" in stored_text(other_rec, other), \
        "an account-level `user` shares one session across conversations and title calls (published)"
    keyed = only_turn(up, k2)
    assert replayed(keyed) == [b1], "the session-key header did not give the conversation its own session"
    assert q1 not in stored_text(keyed, k2)


# --------------------------------------------------------------------------- LobeChat


def test_lobechat_sequence(gw: Running) -> None:
    """Sampling defaults go upstream as given (b24); the topic summary is a stateless streamed call."""
    c = Client(gw, JS_SDK)
    sampling = {"temperature": 1, "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0}
    base = {"model": "openclaw/main", "stream": True, "stream_options": {"include_usage": True}, **sampling}
    try:
        assert set(c.models()) >= {"openclaw", "openclaw/default", "openclaw/main"}
        q1 = f"lobe first {gw.kind}"
        a1 = c.chat({**base, "messages": [{"role": "system", "content": ""}, user(q1)]})
        summary = f"lobe summary {gw.kind}"
        c.chat({**base, "messages": [{"role": "system", "content": LOBE_SUMMARY_SYSTEM},
                                     user(f"User: {q1}\nAssistant: {a1}\n{summary}")]})
        q2 = f"lobe second {gw.kind}"
        a2 = c.chat({**base, "messages": [{"role": "system", "content": ""}, user(q1), assistant(a1), user(q2)]})
        assert a2.endswith(q2)
    finally:
        c.close()
    up = gw.upstream
    first = only_turn(up, q1)
    assert {k: first.body.get(k) for k in sampling} == sampling
    assert first.body["stream_options"] == {"include_usage": True}
    summary_rec = [r for r in up.chat_requests() if summary in last_user_text(r.body)][0]
    assert replayed(summary_rec) == [] and LOBE_SUMMARY_SYSTEM in summary_rec.body["messages"][0]["content"]
    second = only_turn(up, q2)
    assert replayed(second) == [] and f"Assistant: {a1}" in last_user_text(second.body)


# --------------------------------------------------------------------------- continuity across a restart


def test_user_and_session_key_sessions_survive_a_restart(gw: Running) -> None:
    """A ``user``-derived session and an ``x-openclaw-session-key`` session are stored on disk: after
    a graceful restart the next turn still replays the earlier one."""
    c = Client(gw, JS_SDK)
    by_user = {"model": "openclaw", "user": f"Conv:Restart-{gw.kind}"}
    key = {"x-openclaw-session-key": f"my-app-thread-{gw.kind}"}
    try:
        u1 = f"restart user first {gw.kind}"
        r1 = c.chat({**by_user, "messages": [user(u1)]})
        k1 = f"restart key first {gw.kind}"
        s1 = c.chat({"model": "openclaw", "stream": True, "messages": [user(k1)]}, key)
    finally:
        c.close()
    gw.restart()
    c = Client(gw, JS_SDK)
    try:
        u2 = f"restart user second {gw.kind}"
        c.chat({**by_user, "user": f"conv:restart-{gw.kind}", "messages": [user(u2)]})  # case-folded: the same session
        k2 = f"restart key second {gw.kind}"
        c.chat({"model": "openclaw", "stream": True, "messages": [user(k2)]}, key)
    finally:
        c.close()
    assert replayed(only_turn(gw.upstream, u2)) == [r1]
    assert replayed(only_turn(gw.upstream, k2)) == [s1]


# --------------------------------------------------------------------------- ours: sessionMode "conversation"


@pytest.mark.parametrize("persist", [True, False], ids=["persisted", "in-memory"])
def test_open_webui_conversation_mode(tmp_path: Path, persist: bool) -> None:
    """Ours only (an extension): with ``sessionMode: "conversation"`` an Open WebUI conversation without
    ``user`` or chat-id header keeps one session as it grows; its ``### Task:`` helpers stay out of
    it. With ``conversation.persist`` the link survives a restart; without, the turns after the
    restart continue in a session of their own (only the first turn's session is lost)."""
    chat_cfg = {"sessionMode": "conversation", "conversation": {"persist": persist}}
    with running_gateway("ours", tmp_path, gateway={"http": {"endpoints": {"chatCompletions": chat_cfg}}}) as gw:
        c = Client(gw, OPEN_WEBUI)
        base = {"model": "openclaw/default", "stream": True}
        try:
            q1, q2, q3, q4 = (f"conversation mode q{i} {persist}" for i in range(1, 5))
            a1 = c.chat({**base, "messages": [user(q1)]})
            c.chat({"model": "openclaw/default", "stream": False, "messages": [user(TITLE_TASK + history_block((q1, a1)))]})
            a2 = c.chat({**base, "messages": [user(q1), assistant(a1), user(q2)]})
            gw.restart()
            c.close()
            c = Client(gw, OPEN_WEBUI)
            history = [user(q1), assistant(a1), user(q2), assistant(a2)]
            a3 = c.chat({**base, "messages": [*history, user(q3)]})
            c.chat({**base, "messages": [*history, user(q3), assistant(a3), user(q4)]})
        finally:
            c.close()
        up = gw.upstream
        assert replayed(only_turn(up, q2))[:1] == [a1]
        assert "### Task:" not in stored_text(only_turn(up, q2), q2)
        title = [r for r in up.chat_requests() if "### Task:" in last_user_text(r.body)]
        assert len(title) == 1 and replayed(title[0]) == []
        three, four = only_turn(up, q3), only_turn(up, q4)
        if persist:
            assert replayed(three)[:2] == [a1, a2] and replayed(four)[:3] == [a1, a2, a3]
        else:
            assert a1 not in replayed(three) and replayed(four)[:1] == [a3]
