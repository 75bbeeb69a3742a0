"""Telegram end to end, against ours and the published gateway, with a Bot-API-shaped server.

The same flow for both (channels-observed.md): start-up calls; an unknown DM gets the pairing
message once (a second DM while pending gets nothing); ``openclaw pairing list|approve`` (our CLI,
on the gateway's own state) makes the sender a paired owner; the next DM is answered by the agent
with a typing indicator first; a reply over 4,000 characters arrives in chunks split at line
breaks; a ``429 retry_after`` on ``sendMessage`` is retried and delivered once; ``message send``
prints the message id; an allowlisted group answers a mention and ignores the rest, a group that
is not allowlisted is ignored; ``channels status --probe`` shows the account connected and working.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from agent_gateways import KINDS, REFERENCE
from botapi import BOT_USERNAME, Fault
from channel_gateways import Rig, telegram_gateway
from upstream import Text, last_user_text

USER = 4242
ALLOWED_GROUP = -1000000000777
OTHER_GROUP = -1000000000123
PAIRING = re.compile(
    r"^OpenClaw: access not configured\.\n\nYour Telegram user id: 4242\nPairing code:\n\n<pre><code>([A-HJ-NP-Z2-9]{8})\n"
    r"</code></pre>\nAsk the bot owner to approve with:\n\n<pre><code>openclaw pairing approve telegram \1\n</code></pre>$"
)
WAIT = 90.0
QUIET = 4.0


def long_reply() -> str:
    lines = [f"line {i:04d} " + " ".join(["lorem ipsum dolor sit amet"] * 3) for i in range(100)]
    return "\n".join(lines)  # 9,199 characters, 100 lines


def _script_long(rig: Rig) -> None:
    def behaviour(rec):  # noqa: ANN001, ANN202 - tests/upstream.py hook
        body = rec.body if isinstance(rec.body, dict) else {}
        return Text(long_reply()) if "LONGREPLY" in last_user_text(body) else None

    rig.upstream.behaviour = behaviour


def _replies(rig: Rig, chat: int) -> list[dict]:
    return [b for b in rig.api.sent(chat) if b.get("text", "").startswith("upstream-reply-") or b.get("text", "").startswith("line ")]


def _flow(rig: Rig) -> None:
    api = rig.api
    assert api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= 2, 120), rig.output()
    names = [c.method for c in api.calls if c.method != "getUpdates"][:6]
    assert names == ["getMe", "deleteWebhook", "deleteMyCommands", "deleteMyCommands", "setMyCommands", "setMyCommands"], names
    assert api.calls_of("getMe")[0].http == "GET"
    assert api.calls_of("deleteWebhook")[0].body == {"drop_pending_updates": False}
    polls = api.calls_of("getUpdates")
    assert polls[0].body["timeout"] == 0 and "offset" not in polls[0].body and len(polls[0].body["allowed_updates"]) == 24

    # an unknown sender: the pairing message, once; the message is not processed
    api.dm(USER, "hello bot")
    assert api.wait_for(lambda a: len(a.sent(USER)) >= 1, WAIT), rig.output()
    first = api.sent(USER)[0]
    match = PAIRING.match(first["text"])
    assert match and first["parse_mode"] == "HTML" and str(first["chat_id"]) == str(USER), first
    code = match.group(1)
    assert not api.calls_of("sendChatAction") and not rig.upstream.chat_requests()
    api.dm(USER, "second while pending")
    assert not api.wait_for(lambda a: len(a.sent(USER)) > 1, QUIET)

    # the pairing RPC as the Control UI reads it (same shape on both gateways)
    rpc = rig.cli("gateway", "call", "channels.pairing.list", "--params", "{}", "--json")
    assert rpc.returncode == 0, rpc.stdout + rpc.stderr
    doc = json.loads(rpc.stdout)
    assert [{k: a[k] for k in ("channel", "channelLabel", "accountId")} for a in doc["accounts"]] == [
        {"channel": "telegram", "channelLabel": "Telegram", "accountId": "default"}]
    assert doc["commandOwnerConfigured"] is False and doc["limits"] == {"pendingPerAccount": 3, "ttlMs": 3_600_000}
    (req,) = doc["requests"]
    assert {"requestId", "channel", "channelLabel", "accountId", "senderId", "senderLabel", "createdAt", "lastSeenAt", "expiresAt",
            "notifySupported"} <= set(req) <= {"requestId", "channel", "channelLabel", "accountId", "accountLabel", "senderId",
                                               "senderLabel", "metadata", "createdAt", "lastSeenAt", "expiresAt", "notifySupported"}
    assert (req["senderId"], req["senderLabel"], len(req["requestId"])) == (str(USER), "telegramUserId", 32)
    bad = rig.cli("gateway", "call", "channels.status", "--params", '{"channel": "nope"}', "--json")
    assert bad.returncode != 0 and "unknown channel: nope" in bad.stdout + bad.stderr

    listed = rig.cli("pairing", "list", "telegram", "--json")
    assert listed.returncode == 0, listed.stderr
    requests = json.loads(listed.stdout)["requests"]
    assert [r["code"] for r in requests] == [code] and requests[0]["id"] == str(USER)
    approved = rig.cli("pairing", "approve", "telegram", code)
    assert approved.returncode == 0, approved.stderr
    assert f"Approved telegram sender {USER}." in approved.stdout
    assert f"Command owner configured telegram:{USER} (commands.ownerAllowFrom was empty)." in approved.stdout
    assert rig.config()["commands"]["ownerAllowFrom"] == [f"telegram:{USER}"]

    # paired: typing, then the agent's reply (chat_id a number for typing, a string for the reply)
    api.dm(USER, "now paired hello")
    assert api.wait_for(lambda a: any(b["text"].endswith(": now paired hello") for b in a.sent(USER)), WAIT), rig.output()
    reply = next(b for b in api.sent(USER) if b["text"].endswith(": now paired hello"))
    assert reply == {"chat_id": str(USER), "text": reply["text"], "parse_mode": "HTML"} and reply["text"].startswith("upstream-reply-")
    typing = api.calls_of("sendChatAction")
    assert typing and typing[0].body == {"chat_id": USER, "action": "typing"}
    assert not any(b["text"].endswith(": second while pending") for b in api.sent(USER))

    # a long reply: chunks of at most 4,000 characters, split at line breaks
    _script_long(rig)
    before = len(api.sent(USER))
    api.dm(USER, "LONGREPLY please")
    expected = long_reply()
    # (as published, each chunk but the last ends with the line break it was split at)
    ok = api.wait_for(lambda a: "".join(b["text"] for b in a.sent(USER)[before:]) == expected, WAIT)
    chunks = [b["text"] for b in api.sent(USER)[before:]]
    assert ok, ([(len(c), c[:12], c[-12:]) for c in chunks], rig.output())
    assert len(chunks) >= 3 and all(len(c) <= 4000 for c in chunks)
    assert all(c.startswith("line ") for c in chunks) and all(c.endswith("\n") for c in chunks[:-1]), [c[:20] for c in chunks]

    # 429 with retry_after on sendMessage: retried after the delay, delivered once
    before_calls = len(api.calls_of("sendMessage"))
    api.fail("sendMessage", Fault(429, "Too Many Requests: retry after 2", retry_after=2))
    api.dm(USER, "rate limited hello")
    assert api.wait_for(lambda a: any(b["text"].endswith(": rate limited hello") for b in a.sent(USER)), WAIT), rig.output()
    attempts = [c for c in api.calls_of("sendMessage")[before_calls:] if c.body.get("text", "").endswith(": rate limited hello")]
    assert [c.status for c in attempts] == [429, 200], [(c.status, c.t) for c in attempts]
    assert attempts[1].t - attempts[0].t >= 1.9
    assert sum(1 for b in api.sent(USER) if b["text"].endswith(": rate limited hello")) == 1

    # message send through the gateway
    sent = rig.cli("message", "send", "--channel", "telegram", "--target", str(USER), "--message", "hi there")
    assert sent.returncode == 0, sent.stderr
    assert re.fullmatch(r"✅ Sent via telegram\. Message ID: \d+\n", sent.stdout), sent.stdout
    assert {"chat_id": str(USER), "text": "hi there", "parse_mode": "HTML"} in api.sent(USER)

    # groups: the allowlisted one answers a mention only; another group is ignored altogether
    api.group(ALLOWED_GROUP, USER, f"@{BOT_USERNAME} group question")
    assert api.wait_for(lambda a: any(b["text"].endswith("group question") for b in a.sent(ALLOWED_GROUP)), WAIT), rig.output()
    api.group(ALLOWED_GROUP, USER, "group chatter without a mention")
    api.group(OTHER_GROUP, USER, f"@{BOT_USERNAME} hello other group")
    api.group(OTHER_GROUP, USER, "other group chatter")
    assert not api.wait_for(lambda a: len(a.sent(ALLOWED_GROUP)) > 1 or a.sent(OTHER_GROUP), QUIET)

    js = rig.cli("channels", "status", "--json")
    assert js.returncode == 0, js.stderr
    payload = json.loads(js.stdout)
    assert payload["channelOrder"] == ["telegram"] and payload["channelLabels"] == {"telegram": "Telegram"}
    assert payload["channelDefaultAccountId"] == {"telegram": "default"} and payload["channels"]["telegram"]["configured"] is True
    (account,) = payload["channelAccounts"]["telegram"]
    assert {k: account.get(k) for k in ("accountId", "enabled", "configured", "running", "connected", "mode", "tokenSource")} == {
        "accountId": "default", "enabled": True, "configured": True, "running": True, "connected": True, "mode": "polling",
        "tokenSource": "config"}
    assert isinstance(account["lastInboundAt"], int) and isinstance(account["lastOutboundAt"], int)

    status = rig.cli("channels", "status", "--probe")
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith("- Telegram default:"))
    assert line.startswith("- Telegram default: enabled, configured, running, connected"), line
    for bit in ("mode:polling", f"bot:@{BOT_USERNAME}", "token:***", "works"):
        assert bit in line, line


@pytest.mark.parametrize("kind", KINDS)
def test_telegram_flow(kind: str, tmp_path: Path) -> None:
    groups = {str(ALLOWED_GROUP): {"requireMention": True}}
    with telegram_gateway(kind, tmp_path, groups=groups) as rig:
        _flow(rig)


@pytest.mark.skipif(not REFERENCE, reason="OPENCLAW_REFERENCE_BIN is not set: the published CLI is needed")
def test_published_cli_against_ours(tmp_path: Path) -> None:
    """The published ``pairing``, ``message send`` and ``channels status --probe`` work with our gateway."""
    with telegram_gateway("ours", tmp_path) as rig:
        api = rig.api
        assert api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= 2, 60), rig.output()
        api.dm(USER, "hello bot")
        assert api.wait_for(lambda a: len(a.sent(USER)) >= 1, WAIT), rig.output()
        code = PAIRING.match(api.sent(USER)[0]["text"]).group(1)
        listed = rig.published_cli("pairing", "list", "telegram", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [r["code"] for r in json.loads(listed.stdout)["requests"]] == [code]
        approved = rig.published_cli("pairing", "approve", "telegram", code)
        assert approved.returncode == 0 and f"Approved telegram sender {USER}." in approved.stdout, approved.stdout + approved.stderr
        api.dm(USER, "paired through the published cli")
        assert api.wait_for(lambda a: any(b["text"].endswith(": paired through the published cli") for b in a.sent(USER)), WAIT), rig.output()
        sent = rig.published_cli("message", "send", "--channel", "telegram", "--target", str(USER), "--message", "hi from the published cli")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert re.search(r"✅ Sent via telegram\. Message ID: \d+", sent.stdout), sent.stdout
        assert {"chat_id": str(USER), "text": "hi from the published cli", "parse_mode": "HTML"} in api.sent(USER)
        status = rig.published_cli("channels", "status", "--probe")
        assert status.returncode == 0, status.stderr
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith("- Telegram default:"))
        assert line.startswith("- Telegram default: enabled, configured, running, connected") and "works" in line, line
