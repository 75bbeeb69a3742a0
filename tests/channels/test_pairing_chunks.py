"""Pairing rules, ISO times, chunking and rendering, outbox decisions, health (pure, no I/O)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_core.channels import chunking, delivery, pairing, status, telegram
from gateway_core.channels.timefmt import iso_from_ms, ms_from_iso

T0 = 1_796_124_489_841


def codes(*values: str) -> itertools.chain[str]:
    return itertools.chain(values, (f"CODE{i:04d}".replace("0", "A").replace("1", "B") for i in itertools.count()))


def test_pairing_lifecycle() -> None:
    st_ = pairing.PairingState(requests=[], allow={})
    first = pairing.upsert(st_, account_id="default", sender_id="42", meta={"username": "ada"}, now_ms=T0, codes=codes("ABCD2345"))
    assert first == pairing.Upserted("ABCD2345", True)
    again = pairing.upsert(st_, account_id="default", sender_id="42", meta={}, now_ms=T0 + 1000, codes=codes("ZZZZ9999"))
    assert again == pairing.Upserted("ABCD2345", False)  # same code, and not sent again
    assert st_.requests[0].last_seen_at == iso_from_ms(T0 + 1000) and st_.requests[0].created_at == iso_from_ms(T0)
    for n, sender in enumerate(("7", "8")):
        assert pairing.upsert(st_, account_id="default", sender_id=sender, meta={}, now_ms=T0, codes=codes(f"QQQQ{n + 2}QQQ")).created
    assert pairing.upsert(st_, account_id="default", sender_id="9", meta={}, now_ms=T0, codes=codes("WWWW2222")) == pairing.Upserted("", False)
    assert pairing.upsert(st_, account_id="work", sender_id="9", meta={}, now_ms=T0, codes=codes("WWWW2222")).created  # per account
    # approval by code (any case) allows the sender and removes the request
    assert pairing.approve_code(st_, "abcd2345", T0 + 2000).id == "42"
    assert pairing.approved(st_, "default") == ["42"] and pairing.approve_code(st_, "ABCD2345", T0) is None
    # an hour later, every request has expired
    assert pairing.pending(st_, T0 + pairing.TTL_MS + 1) == []
    assert pairing.approve_code(st_, "QQQQ2QQQ", T0 + pairing.TTL_MS + 1) is None


def test_pairing_codes_must_be_from_the_alphabet_and_unique() -> None:
    st_ = pairing.PairingState(requests=[], allow={})
    got = pairing.upsert(st_, account_id="default", sender_id="1", meta={}, now_ms=T0, codes=iter(["O0I1AAAA", "short", "GXXDC2DE"]))
    assert got.code == "GXXDC2DE"
    got2 = pairing.upsert(st_, account_id="default", sender_id="2", meta={}, now_ms=T0, codes=iter([got.code, "ANXTHER2"]))
    assert got2.code == "ANXTHER2"
    assert set(pairing.ALPHABET).isdisjoint("0O1I") and len(pairing.ALPHABET) == 32


def test_request_ids_dismiss_and_public_shape() -> None:
    st_ = pairing.PairingState(requests=[], allow={})
    pairing.upsert(st_, account_id="default", sender_id="42", meta={"firstName": "Ada"}, now_ms=T0, codes=codes("ABCD2345"))
    req = st_.requests[0]
    rid = pairing.request_id("telegram", req)
    assert len(rid) == 32 and rid == pairing.request_id("telegram", req)
    shown = pairing.public_request("telegram", "Telegram", "telegramUserId", req)
    assert shown["requestId"] == rid and shown["metadata"] == {"firstName": "Ada"} and shown["senderId"] == "42"
    assert shown["expiresAt"] == iso_from_ms(ms_from_iso(req.created_at) + pairing.TTL_MS)
    assert pairing.dismiss_request(st_, "telegram", "nope", T0) is None
    assert pairing.dismiss_request(st_, "telegram", rid, T0).id == "42" and pairing.approved(st_, "default") == []
    assert pairing.owner_entry("telegram", "42") == "telegram:42" and pairing.owner_entry("telegram", "telegram:42") == "telegram:42"


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
@settings(max_examples=300)
def test_iso_round_trip(ms: int) -> None:
    assert ms_from_iso(iso_from_ms(ms)) == ms


def test_iso_known_values() -> None:
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_ms(T0) == "2026-12-01T11:28:09.841Z"
    assert ms_from_iso("2026-12-01T12:28:09.841+01:00") == T0 and ms_from_iso("garbage") is None


def test_telegram_pairing_message_as_observed() -> None:
    assert telegram.pairing_text("4242", "A79KDNAT") == (
        "OpenClaw: access not configured.\n\nYour Telegram user id: 4242\nPairing code:\n\n<pre><code>A79KDNAT\n</code></pre>\n"
        "Ask the bot owner to approve with:\n\n<pre><code>openclaw pairing approve telegram A79KDNAT\n</code></pre>"
    )


def test_telegram_html() -> None:
    assert chunking.telegram_html("a < b & c") == "a &lt; b &amp; c"
    assert chunking.telegram_html("use `x<y` and **bold** [docs](https://x.y/?a=1&b=2)") == (
        'use <code>x&lt;y</code> and <b>bold</b> <a href="https://x.y/?a=1&amp;b=2">docs</a>'
    )
    assert chunking.telegram_html("```py\nprint(1)\n```") == "<pre><code>print(1)\n</code></pre>"


lines_strategy = st.lists(st.text(alphabet="ab c\tXY-", min_size=0, max_size=120), min_size=1, max_size=80)


@given(lines_strategy, st.integers(min_value=20, max_value=400))
@settings(max_examples=200)
def test_chunk_lines_properties(lines: list[str], limit: int) -> None:
    text = "\n".join(lines).strip("\n")
    chunks = chunking.chunk_lines(text, limit)
    assert all(len(c) <= limit for c in chunks)
    if all(len(ln) <= limit - 8 for ln in lines):  # no line needed cutting: the split is only at line breaks
        kept = [ln for ln in "\n".join(chunks).split("\n") if ln.strip()]
        assert kept == [ln for ln in text.split("\n") if ln.strip()]  # (blank lines at a cut are dropped)


def test_chunk_lines_keeps_fences_balanced() -> None:
    body = "\n".join(f"code line {i}" for i in range(60))
    chunks = chunking.chunk_lines(f"intro\n```\n{body}\n```\noutro", 200)
    assert len(chunks) > 2 and all(c.count("```") % 2 == 0 for c in chunks)


def test_telegram_render_chunks_keep_their_line_break() -> None:
    text = "\n".join(f"line {i:03d} " + "x" * 90 for i in range(100))
    chunks = telegram.render_chunks(text)
    assert len(chunks) == 3 and all(len(c) <= 4000 for c in chunks) and "".join(chunks) == text
    assert all(c.endswith("\n") for c in chunks[:-1])


@given(st.lists(st.text(alphabet="abcdefgh é", min_size=1, max_size=30), min_size=1, max_size=120), st.sampled_from(["#oc", "alice"]))
@settings(max_examples=200)
def test_chunk_irc_properties(words: list[str], target: str) -> None:
    text = "\n".join(" ".join(words[i : i + 7]) for i in range(0, len(words), 7))
    chunks = chunking.chunk_irc(text, target)
    assert all(len(c) <= 350 and len(f"PRIVMSG {target} :{c}\r\n".encode()) <= 512 for c in chunks)
    assert all("\n" not in c and c == c.strip() for c in chunks)
    assert " ".join(chunks).split() == chunking.irc_clean(text).split()


def test_chunk_irc_word_boundaries() -> None:
    words = " ".join(f"word{i:03d}" for i in range(160))  # 1,279 characters
    chunks = chunking.chunk_irc(words, "#oc")
    assert [len(c) for c in chunks] == [343, 343, 343, 247] and all(not c.endswith("wor") for c in chunks)
    assert chunking.chunk_irc("one\ntwo\r\nthree", "#oc") == ["one two three"]


def test_outbox_decisions() -> None:
    D = delivery
    assert D.decide(D.Outcome(kind="delivered", message_id="5"), attempts=1, created_ms=0, now_ms=10).state == "sent"
    d = D.decide(D.Outcome(kind="rate_limited", retry_after_s=3), attempts=1, created_ms=0, now_ms=1000)
    assert (d.state, d.next_at_ms) == ("pending", 4000)
    d = D.decide(D.Outcome(kind="refused"), attempts=3, created_ms=0, now_ms=1000)
    assert (d.state, d.next_at_ms) == ("pending", 5000)
    d = D.decide(D.Outcome(kind="ambiguous", detail="HTTP 500"), attempts=1, created_ms=0, now_ms=1)
    assert d.state == "unknown" and d.notice and "refusing blind replay" in d.error
    assert D.decide(D.Outcome(kind="rejected", detail="400: chat not found"), attempts=1, created_ms=0, now_ms=1).state == "failed"
    assert D.decide(D.Outcome(kind="refused"), attempts=40, created_ms=0, now_ms=D.MAX_AGE_MS).state == "failed"
    assert [D.backoff_s(n) for n in (1, 2, 3, 7, 50)] == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert D.classify_http(None, sent=False).kind == "refused" and D.classify_http(None, sent=True).kind == "ambiguous"
    assert telegram.classify(429, {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 7}},
                             sent=True).retry_after_s == 7
    assert telegram.classify(200, {"ok": True, "result": {"message_id": 9}}, sent=True) == D.Outcome(kind="delivered", message_id="9")
    assert telegram.classify(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, sent=True).kind == "ambiguous"
    assert telegram.classify(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}, sent=True).kind == "rejected"


NOW = 10_000_000


def snap(**kw: object) -> dict:
    base = {"enabled": True, "configured": True, "running": True, "connected": True, "lifecycle": "ready",
            "lastStartAt": NOW - 600_000, "lastTransportActivityAt": NOW - 1000}
    base.update(kw)
    return base


def test_health_rules_in_order() -> None:
    h = status.health_state
    assert h(snap(enabled=False, terminal=True), NOW) == "unmanaged"
    assert h(snap(configured=False), NOW) == "unmanaged"
    assert h(snap(running=False, terminal=True), NOW) == "terminal-disconnect"
    assert h(snap(ingressAvailable=False), NOW) == "ingress-unavailable"
    assert h(snap(lifecycle="blocked"), NOW) == "blocked"
    assert h(snap(lifecycle="starting", lastStartAt=NOW - 5000, connected=False), NOW) == "startup-connect-grace"
    assert h(snap(running=False), NOW) == "not-running"
    assert h(snap(busy=True, lastRunActivityAt=NOW - 60_000), NOW) == "busy"
    assert h(snap(busy=True, lastRunActivityAt=NOW - 26 * 60_000), NOW) == "stuck"
    assert h(snap(connected=False, lastDisconnectAt=NOW - 10_000), NOW) == "reconnect-grace"
    assert h(snap(connected=False, lastDisconnectAt=NOW - 200_000), NOW) == "disconnected"
    assert h(snap(lastTransportActivityAt=NOW - 31 * 60_000), NOW) == "stale-socket"
    # connected but silent past its own liveness window: unhealthy long before 30 minutes
    assert h(snap(lastTransportActivityAt=NOW - 130_000), NOW, liveness_ms=120_000) == "stale-socket"
    assert not status.is_healthy("stale-socket") and status.is_healthy("reconnect-grace")
    assert h(snap(), NOW, liveness_ms=120_000) == "healthy"


def test_readiness_lists_unhealthy_configured_accounts() -> None:
    from gateway_core.channels.state import ChannelsState, not_ready

    state = ChannelsState()
    config = {"channels": {"telegram": {"botToken": "1:x"}, "irc": {"host": "h", "nick": "n"}}}
    state.patch("telegram", "default", snap(lastTransportActivityAt=NOW - 1000))
    state.patch("irc", "default", snap(running=False))
    assert not_ready(state, config, NOW) == ["irc:default"]
    state.patch("irc", "default", {"lifecycle": "skipped"})  # OPENCLAW_SKIP_CHANNELS: unmanaged
    state.patch("telegram", "default", {"lastTransportActivityAt": NOW - 31 * 60_000})  # stale: readiness ignores it
    assert not_ready(state, config, NOW) == []
