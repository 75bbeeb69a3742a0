"""The methods the Control UI relies on, in memory: ``config.plan``, the config round trip with
redacted secrets, and device pairing approval (``device.pair.list/approve/reject``).

The secret round trip matches the published gateway (2026.9.6, live): ``config.set`` with the
``__OPENCLAW_REDACTED__`` marker that ``config.get`` handed out keeps the stored token.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from test_app_layer import ADMIN, Client

from conformance.core_driver import CONFIG_PATH, SimHost
from gateway_core.device import DeviceKey

REDACTED = "__OPENCLAW_REDACTED__"


def test_config_set_keeps_redacted_secrets() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    got = c.call("config.get", {})["payload"]
    parsed = got["parsed"]
    assert parsed["gateway"]["auth"]["token"] == REDACTED
    parsed["logging"] = {"level": "debug"}
    res = c.call("config.set", {"raw": json.dumps(parsed), "baseHash": got["hash"]})
    assert res["ok"], res
    on_disk = json.loads(host.files[CONFIG_PATH])
    assert on_disk["gateway"]["auth"]["token"] == "T"  # not the marker
    assert on_disk["logging"] == {"level": "debug"}


def test_a_redaction_marker_with_nothing_to_keep_is_refused() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    got = c.call("config.get", {})["payload"]
    raw = json.dumps({"gateway": {"auth": {"mode": "token", "token": "T"}}, "x": {"password": REDACTED}})
    res = c.call("config.set", {"raw": raw, "baseHash": got["hash"]})
    assert res["ok"] is False and "x.password is redacted" in res["error"]["message"]


def test_config_plan_previews_per_key_and_sees_nothing_left_once_applied() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    got = c.call("config.get", {})["payload"]
    proposed = dict(got["parsed"])
    proposed["gateway"] = {**proposed["gateway"], "auth": {**proposed["gateway"]["auth"], "rateLimit": {"maxAttempts": 20}}}
    proposed["gateway"]["port"] = 19999
    plan = c.call("config.plan", {"raw": json.dumps(proposed)})
    assert plan["ok"], plan
    p = plan["payload"]
    by_path = {ch["path"]: ch for ch in p["changes"]}
    # A key added where there was none is one change at the new subtree (the planner's diff).
    assert by_path["gateway.auth.rateLimit"]["effect"] == "hot"
    assert by_path["gateway.auth.rateLimit"]["applies"] == "hot"
    assert by_path["gateway.port"]["applies"] == "restart"
    assert p["restart"] is True and p["mode"] == "hybrid" and p["valid"] is True
    assert p["baseHash"] == got["hash"]
    # The secret marker compares equal to the stored token: no change reported for it.
    assert "gateway.auth.token" not in by_path
    # Under reload mode off nothing applies: every change waits.
    proposed["gateway"]["reload"] = {"mode": "off"}
    off = c.call("config.plan", {"raw": json.dumps(proposed)})["payload"]
    assert {ch["applies"] for ch in off["changes"]} == {"deferred"}
    # Without raw: the file against the applied config (the same right now).
    assert c.call("config.plan", {})["payload"]["changes"] == []
    bad = c.call("config.plan", {"raw": "{gateway: {port: 'x'}}"})["payload"]
    assert bad["valid"] is False and bad["issues"]
    assert c.call("config.plan", {"raw": "[1]"})["ok"] is False
    assert c.call("config.plan", {"bogus": 1})["ok"] is False


def test_config_plan_is_an_admin_only_extra_method() -> None:
    host = SimHost("token", "T", "P")
    assert "config.plan" in host.app.policy.extra_methods
    reader = Client(host, "reader", scopes=["operator.read"])
    res = reader.call("config.plan", {})
    assert res["ok"] is False and res["error"]["message"] == "missing scope: operator.admin"


def _remote_device(host: SimHost, name: str, key: DeviceKey) -> dict[str, Any]:
    """A Control UI on another machine connects with its device proof; returns its connect answer."""
    host.open(name, {"ip": "192.168.1.9", "host": "192.168.1.2:18789"}, "http://192.168.1.2:18789")
    challenge = host.inbox[name].popleft().frame
    nonce, ts = challenge["payload"]["nonce"], challenge["payload"]["ts"]
    proof = key.proof(nonce=nonce, signed_at=ts, client_id="openclaw-control-ui", client_mode="webchat", scopes=ADMIN, token="T", platform="linux")
    params = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "openclaw-control-ui", "version": "1", "platform": "linux", "mode": "webchat"},
        "role": "operator",
        "scopes": ADMIN,
        "auth": {"token": "T"},
        "device": {"id": proof.id, "publicKey": proof.public_key, "signature": proof.signature, "signedAt": proof.signed_at, "nonce": proof.nonce},
    }
    host.deliver(name, json.dumps({"type": "req", "id": "c1", "method": "connect", "params": params}))
    host.pump()
    return next(i.frame for i in host.inbox[name] if i.kind == "frame" and i.frame.get("id") == "c1")


def test_a_remote_browser_waits_for_approval_then_connects() -> None:
    host = SimHost("token", "T", "P")
    host.app.parts["devices"] = host.services
    admin = Client(host, "admin", scopes=[*ADMIN, "operator.pairing"])
    key = DeviceKey.from_seed(b"\x21" * 32)
    first = _remote_device(host, "browser-1", key)
    assert first["ok"] is False and first["error"]["details"]["code"] == "PAIRING_REQUIRED"
    request_id = first["error"]["details"]["requestId"]
    listing = admin.call("device.pair.list", {})["payload"]
    (pending,) = listing["pending"]
    assert pending["requestId"] == request_id and pending["deviceId"] == key.device_id
    assert pending["clientId"] == "openclaw-control-ui" and pending["remoteIp"] == "192.168.1.9"
    host.deliver("admin", json.dumps({"type": "req", "id": "ap", "method": "device.pair.approve", "params": {"requestId": request_id}}))
    host.pump()
    frames = admin.frames()
    approved = next(f for f in frames if f.get("id") == "ap")
    assert approved["ok"], approved
    assert approved["payload"]["device"]["scopes"] == sorted(ADMIN)
    events = [f for f in frames if f.get("event") == "device.pair.resolved"]
    assert events and events[0]["payload"]["decision"] == "approved"
    again = _remote_device(host, "browser-2", key)
    assert again["ok"] is True and again["payload"]["auth"]["scopes"] == ADMIN
    assert admin.call("device.pair.approve", {"requestId": request_id})["error"]["message"] == "unknown requestId"


def test_a_rejected_browser_stays_out() -> None:
    host = SimHost("token", "T", "P")
    host.app.parts["devices"] = host.services
    admin = Client(host, "admin", scopes=[*ADMIN, "operator.pairing"])
    key = DeviceKey.from_seed(b"\x22" * 32)
    request_id = _remote_device(host, "b1", key)["error"]["details"]["requestId"]
    assert admin.call("device.pair.reject", {"requestId": request_id})["ok"]
    assert admin.call("device.pair.list", {})["payload"]["pending"] == []
    again = _remote_device(host, "b2", key)
    assert again["ok"] is False and again["error"]["details"]["requestId"] != request_id
    assert admin.call("device.pair.approve", {})["ok"] is False


def test_device_pairing_without_a_registry_is_unavailable() -> None:
    host = SimHost("token", "T", "P")
    admin = Client(host, "admin", scopes=[*ADMIN, "operator.pairing"])
    res = admin.call("device.pair.list", {})
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"


# --------------------------------------------------------------------------- what the published UI opens a chat with


def _chat(host: SimHost, c: Client, text: str) -> None:
    assert c.call("chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": f"k-{text}"})["ok"]
    host.advance_to(host.now + 5)


def test_chat_startup_is_the_first_history_page_with_the_run_state() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    empty = c.call("chat.startup", {"sessionKey": "agent:main:main", "limit": 80, "maxBytes": 262144})["payload"]
    assert empty["sessionKey"] == "agent:main:main" and empty["messages"] == []
    assert empty["sessionInfo"]["hasActiveRun"] is False and empty["sessionInfo"]["isMain"] is True
    _chat(host, c, "hello startup")
    page = c.call("chat.startup", {"sessionKey": "main"})["payload"]
    assert page["sessionKey"] == "agent:main:main"
    assert [m["role"] for m in page["messages"]] == ["user", "assistant"]
    assert page["sessionInfo"]["activeRunIds"] == []
    refused = c.call("chat.startup", {"shortId": "abc", "agentId": "main"})
    assert refused["ok"] is False and "short session references" in refused["error"]["message"]
    assert c.call("chat.startup", {"sessionKey": "main", "bogus": 1})["ok"] is False


def test_session_message_subscriptions_describe_and_identity() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    sub = c.call("sessions.messages.subscribe", {"key": "main", "includeApprovals": True})["payload"]
    assert sub["subscribed"] is True and sub["key"] == "agent:main:main"
    assert sub["approvalReplay"]["approvals"] == [] and sub["approvalReplay"]["sessionKey"] == "agent:main:main"
    assert c.call("sessions.messages.unsubscribe", {"key": "main"})["payload"] == {"subscribed": False, "key": "agent:main:main"}
    assert c.call("sessions.describe", {"key": "agent:main:main"})["payload"] == {"session": None}
    _chat(host, c, "describe me")
    described = c.call("sessions.describe", {"key": "agent:main:main"})["payload"]["session"]
    assert described["key"] == "agent:main:main" and described["messageCount"] == 2
    ident = c.call("agent.identity.get", {"agentId": "main"})["payload"]
    assert ident == {"agentId": "main", "name": "Assistant", "nameSource": "default", "avatar": "A"}
    assert c.call("agent.identity.get", {"agentId": "nope"})["ok"] is False


def test_sessions_list_takes_the_published_filters() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    _chat(host, c, "list me")
    params = {"includeGlobal": True, "includeUnknown": True, "configuredAgentsOnly": True, "limit": 200,
              "includeDerivedTitles": True, "includeLastMessage": True, "ownerFirst": True, "agentId": "main"}
    res = c.call("sessions.list", params)
    assert res["ok"], res
    assert [s["key"] for s in res["payload"]["sessions"]] == ["agent:main:main"]
    # No session here was spawned by another: the children of main are none (not every session).
    children = c.call("sessions.list", {"spawnedBy": "agent:main:main", "limit": 10000})["payload"]
    assert children["sessions"] == [] and children["totalCount"] == 0


def test_agents_list_names_the_model_a_turn_will_use() -> None:
    host = SimHost("token", "T", "P")
    c = Client(host)
    (agent,) = c.call("agents.list", {})["payload"]["agents"]
    assert agent["model"] == {"primary": "offline/echo"}  # as published: no fallbacks key without fallbacks


def test_access_policy_seeds_non_loopback_binds_and_follows_hot_edits() -> None:
    host = SimHost("token", "T", "P")
    app = host.app
    app.bind = "lan"
    app.policy = msgspec.structs.replace(app.policy, port=19601)
    assert app.set_access_policy(app.config) == ("http://localhost:19601", "http://127.0.0.1:19601")
    assert app.policy.allowed_origins == ("http://localhost:19601", "http://127.0.0.1:19601")
    edited = {**app.config, "gateway": {**app.config["gateway"], "controlUi": {"allowedOrigins": ["https://ops.example"]},
                                        "nodes": {"pairing": {"autoApproveLocal": False}}}}
    applied = app.apply_config(edited, {"gateway.controlUi.allowedOrigins", "gateway.nodes.pairing.autoApproveLocal"})
    assert "gateway.controlUi.allowedOrigins" in applied and "gateway.nodes.pairing" in applied
    assert app.policy.allowed_origins == ("https://ops.example",)
    assert app.policy.auto_approve_local_pairing is False
    app.bind = "loopback"
    assert app.set_access_policy({}) == () and app.policy.allowed_origins == ()
