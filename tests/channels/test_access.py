"""The access policy, account resolution, routing and chat commands (pure, no I/O)."""

from __future__ import annotations

import pytest

from gateway_core.agents import roster as R
from gateway_core.channels import accounts as A
from gateway_core.channels import commands, policy, routing
from gateway_core.channels.inbound import Inbound
from gateway_core.channels.rules import IrcRules, TelegramRules


def dm(sender: str = "42", text: str = "hi", channel: str = "telegram", account: str = "default") -> Inbound:
    return Inbound(channel=channel, account_id=account, event_id="1", chat_type="direct", peer_id=sender, sender_id=sender,
                   text=text, reply_target=sender)


def group(peer: str = "-100", sender: str = "42", text: str = "hi", mentioned: bool = False, channel: str = "telegram") -> Inbound:
    return Inbound(channel=channel, account_id="default", event_id="2", chat_type="group", peer_id=peer, sender_id=sender,
                   text=text, mentioned=mentioned, reply_target=peer)


def cfg(**tg: object) -> dict:
    return {"channels": {"telegram": {"botToken": "1:x", **tg}}}


def decide(msg: Inbound, config: dict, paired: tuple[str, ...] = (), rules=TelegramRules()) -> policy.Admission:  # noqa: ANN001, B008
    access = A.access_config(config, msg.channel, msg.account_id, group_fallback_to_allow_from=rules.group_fallback_to_allow_from)
    return policy.decide(msg, access, paired, identities=rules.identities(msg, {}), normalize=rules.normalize, aliases=rules.aliases)


@pytest.mark.parametrize(
    ("dm_policy", "allow", "paired", "action"),
    [
        ("pairing", [], (), "pairing"),
        ("pairing", [], ("42",), "dispatch"),
        ("pairing", ["telegram:42"], (), "dispatch"),
        ("pairing", ["tg:42"], (), "dispatch"),
        ("allowlist", [], (), "drop"),
        ("allowlist", [], ("42",), "dispatch"),
        ("allowlist", ["42"], (), "dispatch"),
        ("open", ["*"], (), "dispatch"),
        ("open", ["7"], (), "drop"),
        ("open", ["7"], ("42",), "drop"),  # pairing approvals never widen open
        ("disabled", ["42"], ("42",), "drop"),
    ],
)
def test_dm_table(dm_policy: str, allow: list, paired: tuple, action: str) -> None:
    assert decide(dm(), cfg(dmPolicy=dm_policy, allowFrom=allow), paired).action == action


def test_default_dm_policy_is_pairing_and_reason_is_logged() -> None:
    admission = decide(dm(), cfg())
    assert admission.action == "pairing" and admission.reason == "drop DM sender 42 (dmPolicy=pairing)"


def test_groups_allowlist_mention_and_senders() -> None:
    # default groupPolicy allowlist without groups: everything blocked, mentioned or not
    assert decide(group(mentioned=True), cfg()).reason == "drop channel -100 (not allowlisted)"
    allowed = cfg(groups={"-100": {}})
    assert decide(group(mentioned=True), allowed).action == "dispatch"
    assert decide(group(), allowed) == policy.Admission("skip", "drop channel -100 (missing-mention)")
    assert decide(group("-200", mentioned=True), allowed).action == "drop"  # groups act as an allowlist
    assert decide(group(), cfg(groups={"-100": {"requireMention": False}})).action == "dispatch"
    assert decide(group(), cfg(groups={"*": {"requireMention": False}})).action == "dispatch"
    assert decide(group(mentioned=True), cfg(groups={"-100": {"enabled": False}})).action == "drop"
    assert decide(group(mentioned=True), cfg(groupPolicy="disabled", groups={"-100": {}})).action == "drop"
    assert decide(group(mentioned=True), cfg(groupPolicy="open")).action == "dispatch"
    # sender allowlists: the group's own, then groupAllowFrom, then (Telegram) allowFrom
    assert decide(group(mentioned=True), cfg(groups={"-100": {"allowFrom": ["7"]}})).action == "drop"
    assert decide(group(mentioned=True), cfg(groups={"-100": {}}, groupAllowFrom=["42"])).action == "dispatch"
    assert decide(group(mentioned=True), cfg(groups={"-100": {}}, allowFrom=["7"])).action == "drop"
    # pairing approvals never grant group access
    assert decide(group(mentioned=True), cfg(groups={"-100": {}}, allowFrom=["7"]), ("42",)).action == "drop"


def test_irc_identities_and_no_allowfrom_fallback() -> None:
    rules = IrcRules()
    msg = Inbound(channel="irc", account_id="default", event_id="c:1", chat_type="group", peer_id="#oc",
                  sender_id="alice!~alice@host", text="ocbot: hi", mentioned=True, reply_target="#oc")
    config = {"channels": {"irc": {"groups": {"#OC": {}}, "allowFrom": ["bob!~b@h"]}}}
    assert decide(msg, config, rules=rules).action == "dispatch"  # allowFrom is for DMs only on IRC
    config = {"channels": {"irc": {"groups": {"#oc": {"allowFrom": ["ALICE!~alice@HOST"]}}}}}
    assert decide(msg, config, rules=rules).action == "dispatch"
    config = {"channels": {"irc": {"groups": {"#oc": {"allowFrom": ["alice"]}}}}}
    assert decide(msg, config, rules=rules).action == "drop"  # bare nicks only with dangerouslyAllowNameMatching


def test_accounts_inherit_and_default() -> None:
    config = {"channels": {"telegram": {"dmPolicy": "allowlist", "allowFrom": ["1"], "groups": {"-1": {}},
                                        "accounts": {"Work": {"botToken": "2:y", "groups": {}}, "home": {"enabled": False}},
                                        "defaultAccount": "work"}}}
    sec = A.section(config, "telegram")
    assert A.account_ids(sec) == ["work", "home"] and A.default_account_id(sec) == "work"
    assert A.account_config(sec, "work") == {"dmPolicy": "allowlist", "allowFrom": ["1"], "groups": {}, "botToken": "2:y"}
    assert A.is_enabled(sec, "work") and not A.is_enabled(sec, "home")
    assert A.account_ids(A.section({"channels": {"irc": {}}}, "irc")) == ["default"]
    assert A.configured_channels({"channels": {"defaults": {}, "irc": {}, "telegram": {"enabled": False}}}) == ["irc", "telegram"]
    assert A.redact({"botToken": "secret", "nested": {"password": "x", "host": "h"}}) == {"botToken": "***", "nested": {"password": "***", "host": "h"}}


ROSTER = R.roster({})
FLEET = R.roster({"agents": {"entries": {"ops": {}, "support": {}}}})


def test_session_keys_by_scope() -> None:
    assert routing.route({}, ROSTER, dm(), "default").session_key == "agent:main:main"
    scopes = {
        "per-peer": "agent:main:direct:42",
        "per-channel-peer": "agent:main:telegram:direct:42",
        "per-account-channel-peer": "agent:main:telegram:default:direct:42",
    }
    for scope, key in scopes.items():
        assert routing.route({"session": {"dmScope": scope}}, ROSTER, dm(), "default").session_key == key
    assert routing.route({}, ROSTER, group(), "default").session_key == "agent:main:telegram:group:-100"
    topic = Inbound(channel="telegram", account_id="default", event_id="3", chat_type="group", peer_id="-100", sender_id="1",
                    thread_id="42", reply_target="-100")
    assert routing.route({}, ROSTER, topic, "default").session_key == "agent:main:telegram:group:-100:topic:42"
    assert routing.route({"session": {"groupScope": "main"}}, ROSTER, group(), "default").session_key == "agent:main:main"


def test_binding_tiers_and_fail_closed() -> None:
    bindings = [
        {"agentId": "support", "match": {"channel": "telegram", "accountId": "*"}},
        {"agentId": "ops", "match": {"channel": "telegram"}},
        {"agentId": "support", "match": {"channel": "telegram", "peer": {"kind": "direct", "id": "42"}}},
    ]
    config = {"agents": {"entries": {"ops": {}, "support": {}}}, "bindings": bindings}
    assert routing.route(config, FLEET, dm("42"), "default").agent_id == "support"  # exact peer beats account
    assert routing.route(config, FLEET, dm("7"), "default").tier == "account"  # no accountId: the default account
    assert routing.route(config, FLEET, dm("7", account="other"), "default").tier == "channel"  # accountId "*"
    assert isinstance(routing.route({"agents": {"entries": {"ops": {}, "support": {}}}}, FLEET, dm(), "default"), routing.Unrouted)
    guild = [{"agentId": "ops", "match": {"channel": "telegram", "guildId": "g"}}]
    assert isinstance(routing.route({"bindings": guild}, FLEET, dm(), "default"), routing.Unrouted)


def test_commands_parse() -> None:
    assert commands.parse("/status") == commands.Command("status")
    assert commands.parse("/new start over") == commands.Command("new", "start over")
    assert commands.parse("/status@oc_bot", "oc_bot") == commands.Command("status")
    assert commands.parse("/status@other_bot", "oc_bot") is None
    assert commands.parse("/unknown thing") is None and commands.parse("plain") is None and commands.parse("/") is None
    assert commands.NEW_SESSION == "✅ New session started."
