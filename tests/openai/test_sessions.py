"""Session keys, the previous_response_id map (bounds, scope, persistence) and conversation mode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import CONFIG, NOW_MS, context, ok

from gateway_core.openai.chat import plan_chat
from gateway_core.openai.conversation import (
    ConversationLinks,
    ConversationSettings,
    anchor,
    conversation_settings,
    since_last_reply,
)
from gateway_core.openai.responses import plan_responses, remember
from gateway_core.openai.sessions import (
    RESPONSE_MAX_ENTRIES,
    RESPONSE_TTL_MS,
    LinkMap,
    Scope,
    auth_subject,
    previous_response_settings,
    session_key,
)
from gateway_core.openai.wire import Refused

S = Scope(subject="bearer:x", agent_id="main")


@pytest.mark.parametrize(
    ("headers", "user", "key"),
    [
        ({}, None, "agent:main:openai:rid"),
        ({}, "  ", "agent:main:openai:rid"),
        ({}, "Alice", "agent:main:openai-user:alice"),
        ({"x-openclaw-session-key": "My-Thread"}, "alice", "agent:main:my-thread"),
        ({"x-openclaw-session-key": "agent:main:abc"}, None, "agent:main:abc"),
    ],
)
def test_session_key_rules(headers: dict[str, str], user: str | None, key: str) -> None:
    assert session_key("main", "openai", headers, user, "RID") == key


@pytest.mark.parametrize("reserved", ["cron:abc", "Subagent:x", "acp:1", "agent:main:cron:x", "agent:main:subagent:y"])
def test_reserved_session_keys_are_refused(reserved: str) -> None:
    with pytest.raises(Refused) as refused:
        session_key("main", "openai", {"x-openclaw-session-key": reserved}, None, "rid")
    assert refused.value.answer.json()["error"]["message"] == "`x-openclaw-session-key` cannot use reserved internal session namespaces."


def test_incognito_keys_need_an_owner() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode()
    headers = {"x-openclaw-session-key": "agent:main:dashboard:incognito-1"}
    with pytest.raises(Refused) as refused:
        plan_chat(body, context(headers, sender_is_owner=False))
    assert refused.value.answer.status == 403
    assert plan_chat(body, context(headers)).session_key == "agent:main:dashboard:incognito-1"


def test_auth_subjects() -> None:
    assert auth_subject("token", "T") == "bearer:e632b7095b0bf32c260fa4c539e9fd7b852d0de454e9be26f24d0d6f91d069d3"
    assert auth_subject("trusted-proxy", None, "ann") == "trusted-proxy:ann"
    assert auth_subject("none") == "gateway-auth:none"


def test_links_ttl_is_thirty_minutes() -> None:
    links = LinkMap()
    links.store("resp_1", "k1", S, 0)
    assert links.lookup("resp_1", S, RESPONSE_TTL_MS) == "k1"
    assert links.lookup("resp_1", S, RESPONSE_TTL_MS + 1) is None
    assert len(links) == 0  # an expired entry is dropped on lookup


def test_links_keep_500_and_evict_the_oldest() -> None:
    links = LinkMap()
    for i in range(RESPONSE_MAX_ENTRIES + 3):
        links.store(f"resp_{i}", f"k{i}", S, i)
    assert len(links) == 500 and links.ids()[0] == "resp_3"
    links.store("resp_3", "k3", S, 1000)  # storing again makes it the newest
    links.store("resp_new", "kn", S, 1001)
    assert "resp_3" in links.ids() and "resp_4" not in links.ids()


def test_links_prune_expired_from_the_oldest_on_store() -> None:
    links = LinkMap()
    links.store("a", "ka", S, 0)
    links.store("b", "kb", S, 10)
    links.store("c", "kc", S, RESPONSE_TTL_MS + 5)
    assert links.ids() == ["b", "c"]


@pytest.mark.parametrize(
    "other",
    [Scope(subject="bearer:y", agent_id="main"), Scope(subject="bearer:x", agent_id="ops"),
     Scope(subject="bearer:x", agent_id="main", requested_key="thread-1")],
)
def test_links_are_scoped(other: Scope) -> None:
    links = LinkMap()
    links.store("resp_1", "k1", S, 0)
    assert links.lookup("resp_1", other, 1) is None
    assert links.lookup("resp_1", S, 1) == "k1"


def test_links_persist_and_load() -> None:
    links = LinkMap()
    links.store("resp_1", "k1", Scope(subject="bearer:x", agent_id="main", requested_key="t"), 100)
    links.store("resp_2", "k2", S, 200)
    records = json.loads(json.dumps(links.records()))
    assert records[0] == {"id": "resp_1", "sessionKey": "k1", "scope": {"subject": "bearer:x", "agentId": "main", "sessionKeyHeader": "t"}, "ts": 100}
    restored = LinkMap()
    assert restored.load([*reversed(records), {"id": 5}, "junk", {**records[1], "id": "old", "ts": -RESPONSE_TTL_MS}], 300) == 2
    assert restored.ids() == ["resp_1", "resp_2"] and restored.lookup("resp_2", S, 300) == "k2"


def test_previous_response_settings() -> None:
    assert previous_response_settings(CONFIG).persist is False
    cfg = {"gateway": {"http": {"endpoints": {"responses": {"previousResponse": {"persist": True, "ttlSeconds": 86400, "maxEntries": 50}}}}}}
    got = previous_response_settings(cfg)
    assert (got.persist, got.ttl_ms, got.max_entries) == (True, 86_400_000, 50)


def test_responses_remember_then_continue() -> None:
    links = LinkMap()
    first = plan_responses(json.dumps({"model": "openclaw", "input": "one"}).encode(), context())
    record = remember(links, first, NOW_MS)
    assert record["id"] == first.response_id and record["sessionKey"] == first.session_key
    body = json.dumps({"model": "openclaw", "input": "two", "previous_response_id": first.response_id}).encode()
    again = plan_responses(body, context(request_id="33333333-3333-4333-8333-333333333333"), links)
    assert again.continued and again.session_key == first.session_key


def test_responses_session_from_previous_id_only_in_scope() -> None:
    links = LinkMap()
    body = json.dumps({"model": "openclaw", "input": "next", "previous_response_id": "resp_a"}).encode()
    links.store("resp_a", "agent:main:openresponses:first", Scope(subject="gateway-auth:token", agent_id="main"), NOW_MS)
    assert plan_responses(body, context(), links).session_key == "agent:main:openresponses:first"
    keyed = plan_responses(body, context({"x-openclaw-session-key": "other"}), links)
    assert keyed.session_key == "agent:main:other" and not keyed.continued


# --------------------------------------------------------------------------- conversation mode

CONV = ConversationSettings(mode="conversation")


def chat_body(*messages: tuple[str, str], **extra: Any) -> bytes:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in messages], **extra}).encode()


def plan(links: ConversationLinks, body: bytes, rid: str, headers: dict[str, str] | None = None, settings: ConversationSettings = CONV,
         subject: str = "bearer:a") -> Any:
    return plan_chat(body, context(headers, request_id=rid, auth_subject=subject), conversation=(settings, links))


def test_conversation_keeps_one_session_as_it_grows() -> None:
    links = ConversationLinks()
    first = plan(links, chat_body(("system", "be nice"), ("user", "Hi there")), "r1")
    assert first.conversation.source == "first" and first.session_key == "agent:main:openai-conv:r1"
    record = links.remember(first.conversation, scope=Scope.of("bearer:a", "main", {}), user=None,
                            reply=ok("Hello!  How can I help?").text, now_ms=NOW_MS)
    assert record is not None and record["sessionKey"] == first.session_key
    keys = []
    history: list[tuple[str, str]] = [("system", "be nice"), ("user", "Hi there"), ("assistant", "Hello! How can I\nhelp?")]
    for turn in range(2, 6):
        history.append(("user", f"question {turn}"))
        p = plan(links, chat_body(*history), f"r{turn}")
        keys.append((p.session_key, p.conversation.source))
        history.append(("assistant", f"answer {turn}"))
    assert keys == [(first.session_key, "linked")] * 4


def test_conversations_with_the_same_opening_stay_apart() -> None:
    links = ConversationLinks()
    a = plan(links, chat_body(("user", "hi")), "ra")
    b = plan(links, chat_body(("user", "hi")), "rb")
    assert a.session_key != b.session_key
    scope = Scope.of("bearer:a", "main", {})
    links.remember(a.conversation, scope=scope, user=None, reply="reply A", now_ms=NOW_MS)
    links.remember(b.conversation, scope=scope, user=None, reply="reply B", now_ms=NOW_MS)
    assert plan(links, chat_body(("user", "hi"), ("assistant", "reply A"), ("user", "x")), "r2").session_key == a.session_key
    assert plan(links, chat_body(("user", "hi"), ("assistant", "reply B"), ("user", "x")), "r3").session_key == b.session_key
    other_caller = plan(links, chat_body(("user", "hi"), ("assistant", "reply A"), ("user", "x")), "r4", subject="bearer:b")
    assert other_caller.session_key != a.session_key


def test_without_the_link_turn_two_onwards_share_an_anchor_key() -> None:
    links = ConversationLinks()  # e.g. after a restart without persistence
    two = plan(links, chat_body(("user", "hi"), ("assistant", "hello"), ("user", "q2")), "r2")
    three = plan(links, chat_body(("user", "hi"), ("assistant", "hello"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")), "r3")
    assert two.conversation.source == three.conversation.source == "anchor"
    assert two.session_key == three.session_key and "hi" not in two.session_key


def test_explicit_conversation_ids() -> None:
    links = ConversationLinks()
    owui = {"x-openwebui-chat-id": "chat-42"}
    one = plan(links, chat_body(("user", "a")), "r1", owui)
    two = plan(links, chat_body(("user", "a"), ("assistant", "b"), ("user", "c")), "r2", owui)
    assert one.session_key == two.session_key and one.conversation.source == "id"
    title = plan(links, chat_body(("user", "### Task:\nGenerate a concise title for the chat")), "r3", owui)
    assert title.session_key == one.session_key + ":tasks" and title.conversation.source == "task"
    body_id = plan(links, chat_body(("user", "a"), metadata={"chat_id": "chat-42"}), "r4")
    assert body_id.conversation.source == "id"
    header_wins = plan(links, chat_body(("user", "a")), "r5", {**owui, "x-openclaw-session-key": "mine"})
    assert header_wins.session_key == "agent:main:mine"


def test_task_requests_without_an_id_are_stateless() -> None:
    links = ConversationLinks()
    p = plan(links, chat_body(("user", "### Task: suggest tags")), "r1")
    assert p.conversation.source == "stateless" and p.session_key == "agent:main:openai:r1"


def test_user_scopes_but_does_not_select_in_conversation_mode() -> None:
    links = ConversationLinks()
    x = plan(links, chat_body(("user", "hi"), ("assistant", "yo"), ("user", "q"), user="u1"), "r1")
    y = plan(links, chat_body(("user", "hi"), ("assistant", "yo"), ("user", "q"), user="u2"), "r2")
    assert x.session_key != y.session_key and "u1" not in x.session_key


def test_default_mode_is_the_published_one() -> None:
    assert conversation_settings(CONFIG).mode == "user"
    links = ConversationLinks()
    user_mode = plan(links, chat_body(("user", "hi"), user="Bob"), "r1", settings=ConversationSettings())
    assert user_mode.session_key == "agent:main:openai-user:bob" and user_mode.conversation is None
    stateless = plan(links, chat_body(("user", "hi"), user="Bob"), "r2", settings=ConversationSettings(mode="stateless"))
    assert stateless.session_key == "agent:main:openai:r2"
    cfg = {"gateway": {"http": {"endpoints": {"chatCompletions": {"sessionMode": "conversation",
           "conversation": {"idHeaders": ["X-Chat"], "history": "session", "persist": True}}}}}}
    got = conversation_settings(cfg)
    assert (got.mode, got.id_headers, got.history, got.persist) == ("conversation", ("x-chat",), "session", True)


def test_session_history_mode_flattens_only_the_new_part() -> None:
    links = ConversationLinks()
    settings = ConversationSettings(mode="conversation", history="session")
    body = chat_body(("system", "s"), ("user", "hi"), ("assistant", "yo"), ("user", "next one"))
    p = plan(links, body, "r1", {"x-openwebui-chat-id": "c1"}, settings=settings)
    assert p.message == "next one" and p.extra_system == "s"
    assert since_last_reply([{"role": "user", "content": "a"}]) == [{"role": "user", "content": "a"}]


def test_anchor_ignores_whitespace_and_parts() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi  there"}]},
                {"role": "assistant", "content": "  ok\n"}]
    assert anchor(messages) == ("hi there", "ok")
    assert anchor([{"role": "assistant", "content": "only"}]) == (None, None)
