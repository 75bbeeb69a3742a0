"""The methods the Control UI relies on, in memory: ``config.plan``, the config round trip with
redacted secrets, and device pairing approval (``device.pair.list/approve/reject``).

The secret round trip matches the published gateway (2026.9.6, live): ``config.set`` with the
``__OPENCLAW_REDACTED__`` marker that ``config.get`` handed out keeps the stored token.
"""

from __future__ import annotations

import json
from typing import Any

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
