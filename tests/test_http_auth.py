"""HTTP auth modes on a real gateway, ours and the published one (http-agents-channels.md §1.4, §1.5).

Three gateways per kind (the §0.1 config with the admin RPC on): ``password`` (behind a trusted
proxy at 127.0.0.1, so forwarded client IPs can be locked out: loopback never is), ``none`` and
``trusted-proxy``. Covered: credentials per mode, scopes of identity callers (``x-openclaw-scopes``
on ``/tools/invoke`` and the admin RPC), browser origins in ``none`` mode, the failed-auth lockout
shared by HTTP and the WebSocket handshake, public probes, and the detailed ``/readyz`` only for
local or authenticated callers. Non-loopback peers (untrusted sources, remote callers) are
in-memory: tests/shell/test_http_memory.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from agent_gateways import KINDS
from test_http_tools_invoke import HttpGateway, started
from trio_websocket import connect_websocket_url

PASSWORD = "pw-0123456789-secret"
PLUGINS = {"entries": {"admin-http-rpc": {"enabled": True}}}
UNAUTHORIZED = {"error": {"message": "Unauthorized", "type": "unauthorized"}}
RATE_LIMITED = {"error": {"message": "Too many failed authentication attempts. Please try again later.", "type": "rate_limited"}}
PROXY_AUTH = {"mode": "trusted-proxy", "trustedProxy": {"userHeader": "x-forwarded-user", "allowLoopback": True}}
def missing_scope(scope: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": "forbidden", "message": f"missing scope: {scope}",
                                   "details": {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}}}


class Gw(HttpGateway):
    def invoke(self, headers: dict[str, str] | None = None, tool: str = "agents_list") -> httpx.Response:
        # One connection per request: a forwarded client must never ride on another's keep-alive socket.
        return self.http.post("/tools/invoke", json={"tool": tool}, headers={**(headers or {}), "Connection": "close"})

    def admin(self, method: str, params: Any, headers: dict[str, str]) -> httpx.Response:
        return self.http.post("/api/v1/admin/rpc", json={"id": "a", "method": method, "params": params},
                              headers={**headers, "Connection": "close"})


def _mode(kind: str, factory: pytest.TempPathFactory, name: str, auth: dict[str, Any], **gateway: Any) -> Iterator[Gw]:
    """A gateway of ``kind`` whose ``gateway.auth`` is ``auth`` (plus ``gateway`` keys)."""

    def config(cfg: dict[str, Any]) -> None:
        cfg["gateway"]["auth"] = auth
        cfg["gateway"].update(gateway)

    yield from started(Gw, kind, factory.mktemp(f"auth-{name}-{kind}"), config, plugins=PLUGINS)


@pytest.fixture(scope="module", params=KINDS)
def password(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gw]:
    yield from _mode(request.param, tmp_path_factory, "password", {"mode": "password", "password": PASSWORD},
                     trustedProxies=["127.0.0.1"])


@pytest.fixture(scope="module", params=KINDS)
def none(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gw]:
    yield from _mode(request.param, tmp_path_factory, "none", {"mode": "none"})


@pytest.fixture(scope="module", params=KINDS)
def proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gw]:
    yield from _mode(request.param, tmp_path_factory, "proxy", PROXY_AUTH, trustedProxies=["127.0.0.1"])


# --------------------------------------------------------------------------- password


def test_password_mode_takes_the_password_as_a_bearer(password: Gw) -> None:
    assert password.invoke({"Authorization": f"Bearer {PASSWORD}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-OpenClaw-Token": PASSWORD}, {"Authorization": PASSWORD}):
        r = password.invoke(headers)
        assert (r.status_code, r.json()) == (401, UNAUTHORIZED), headers
    # A shared secret gets the full operator set whatever x-openclaw-scopes says.
    r = password.invoke({"Authorization": f"Bearer {PASSWORD}", "x-openclaw-scopes": "operator.read"})
    assert r.status_code == 200
    ok = password.admin("config.get", {}, {"Authorization": f"Bearer {PASSWORD}", "x-openclaw-scopes": ""})
    assert ok.status_code == 200 and ok.json()["ok"] is True


def test_probes_are_public_and_readiness_details_are_for_local_or_authenticated_callers(password: Gw) -> None:
    remote = {"X-Forwarded-For": "203.0.113.40", "Connection": "close"}
    for path in ("/healthz", "/health"):
        r = password.http.get(path, headers=remote)
        assert (r.status_code, r.json()) == (200, {"ok": True, "status": "live"})
    local = password.http.get("/readyz").json()
    assert local["ready"] is True and local["failing"] == [] and isinstance(local["uptimeMs"], int)
    assert password.http.get("/readyz", headers=remote).json() == {"ready": True}
    assert password.http.get("/readyz", headers={**remote, "Authorization": "Bearer wrong"}).json() == {"ready": True}
    detailed = password.http.get("/readyz", headers={**remote, "Authorization": f"Bearer {PASSWORD}"}).json()
    assert detailed["ready"] is True and "failing" in detailed and "uptimeMs" in detailed
    assert password.http.get("/startupz", headers=remote).json() == {"ok": True, "status": "started"}
    r = password.http.post("/readyz")
    assert (r.status_code, r.headers["allow"], r.text) == (405, "GET, HEAD", "Method Not Allowed")


async def _ws_connect(port: int, client_ip: str, secret: str) -> dict[str, Any]:
    """The ``connect`` answer of a WebSocket handshake that arrives through the proxy for ``client_ip``."""
    async with trio.open_nursery() as nursery:
        ws = await connect_websocket_url(nursery, f"ws://127.0.0.1:{port}/", extra_headers=[("X-Forwarded-For", client_ip)])
        try:
            with trio.fail_after(30):
                challenge = json.loads(await ws.get_message())
                assert challenge["event"] == "connect.challenge"
                await ws.send_message(json.dumps({"type": "req", "id": "c1", "method": "connect", "params": {
                    "minProtocol": 4, "maxProtocol": 4, "role": "operator", "scopes": ["operator.read"],
                    "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
                    "auth": {"password": secret}}}))
                while True:
                    frame = json.loads(await ws.get_message())
                    if frame.get("id") == "c1":
                        return frame
        finally:
            await ws.aclose()
            nursery.cancel_scope.cancel()


def test_failed_http_auth_locks_the_websocket_side_out_too(password: Gw) -> None:
    """10 wrong passwords over HTTP from one forwarded client: HTTP answers 429, and that client's
    WebSocket handshake is refused as rate limited even with the right password; another client is not."""
    client = "203.0.113.50"
    wrong = {"X-Forwarded-For": client, "Authorization": "Bearer wrong"}
    for _ in range(10):
        assert password.invoke(wrong).status_code == 401
    locked = password.invoke(wrong)
    assert (locked.status_code, locked.json()) == (429, RATE_LIMITED)
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    right = password.invoke({"X-Forwarded-For": client, "Authorization": f"Bearer {PASSWORD}"})
    assert right.status_code == 429  # locked out: the right secret waits too
    refused = trio.run(_ws_connect, password.port, client, PASSWORD)
    assert refused["ok"] is False and refused["error"]["details"]["code"] == "AUTH_RATE_LIMITED", refused
    admitted = trio.run(_ws_connect, password.port, "203.0.113.51", PASSWORD)
    assert admitted["ok"] is True, admitted
    assert password.invoke({"X-Forwarded-For": "203.0.113.51", "Authorization": f"Bearer {PASSWORD}"}).status_code == 200


def test_failed_websocket_auth_locks_http_out_too(password: Gw) -> None:
    client = "203.0.113.60"
    for _ in range(10):
        answer = trio.run(_ws_connect, password.port, client, "wrong")
        assert answer["ok"] is False
    r = password.invoke({"X-Forwarded-For": client, "Authorization": f"Bearer {PASSWORD}"})
    assert (r.status_code, r.json()) == (429, RATE_LIMITED)


# --------------------------------------------------------------------------- none


def test_none_mode_needs_no_credential_and_honours_declared_scopes(none: Gw) -> None:
    assert none.invoke().status_code == 200
    assert none.invoke({"x-openclaw-scopes": "operator.write"}).status_code == 200
    for declared in ("operator.read", ""):
        r = none.invoke({"x-openclaw-scopes": declared})
        assert (r.status_code, r.json()) == (403, missing_scope("operator.write")), declared


def test_none_mode_admin_rpc_applies_each_methods_scope(none: Gw) -> None:
    read = {"x-openclaw-scopes": "operator.read"}
    assert none.admin("config.get", {}, read).json()["ok"] is True
    r = none.admin("config.set", {"raw": "{}"}, read)
    assert r.status_code == 500  # FORBIDDEN is not one of the mapped codes
    assert r.json() == {"id": "a", "ok": False, "error": {"code": "FORBIDDEN", "message": "missing scope: operator.admin",
                                                           "details": {"code": "MISSING_SCOPE", "missingScope": "operator.admin",
                                                                       "requiredScopes": ["operator.admin"]}}}
    nothing = none.admin("status", {}, {"x-openclaw-scopes": ""}).json()
    assert nothing["ok"] is False and nothing["error"]["message"] == "missing scope: operator.read"


def test_none_mode_refuses_foreign_browser_pages(none: Gw) -> None:
    for origin in ("https://evil.example", "http://192.168.1.5", "null"):
        r = none.invoke({"Origin": origin})
        assert (r.status_code, r.json()) == (401, UNAUTHORIZED), origin
    # A same-host caller's loopback page passes, on any port.
    for origin in (f"http://127.0.0.1:{none.port}", f"http://localhost:{none.port}", "http://127.0.0.1", "http://127.0.0.1:1234"):
        assert none.invoke({"Origin": origin}).status_code == 200, origin


# --------------------------------------------------------------------------- trusted-proxy


def test_trusted_proxy_identity(proxy: Gw) -> None:
    via = {"X-Forwarded-For": "203.0.113.7"}
    r = proxy.invoke({**via, "x-forwarded-user": "alice"})
    assert r.status_code == 200
    assert proxy.invoke({"X-Forwarded-For": "10.0.0.1, 203.0.113.7", "x-forwarded-user": "alice"}).status_code == 200
    r = proxy.invoke({**via, "x-forwarded-user": "alice", "x-openclaw-scopes": "operator.read"})
    assert (r.status_code, r.json()) == (403, missing_scope("operator.write"))
    ok = proxy.admin("config.get", {}, {**via, "x-forwarded-user": "alice", "x-openclaw-scopes": "operator.read"})
    assert ok.json()["ok"] is True
    detailed = proxy.http.get("/readyz", headers={**via, "x-forwarded-user": "alice"}).json()
    assert "failing" in detailed  # an authenticated identity gets the details


def test_trusted_proxy_refusals(proxy: Gw) -> None:
    via = {"X-Forwarded-For": "203.0.113.7"}
    r = proxy.invoke(via)  # no user header
    assert (r.status_code, r.json()) == (401, UNAUTHORIZED)
    assert proxy.invoke({"Authorization": "Bearer anything"}).status_code == 401  # no shared secret in this mode
    assert proxy.invoke({"x-forwarded-user": "alice"}).status_code == 403  # a header without forwarding: unattributable
    r = proxy.invoke({**{"X-Forwarded-For": "127.0.0.1"}, "x-forwarded-user": "alice"})  # loopback client: unattributable
    assert r.status_code == 403 and r.json()["error"]["type"] == "proxy_attribution_required"
    assert proxy.http.get("/readyz", headers={**via, "Connection": "close"}).json() == {"ready": True}
