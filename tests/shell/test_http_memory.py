"""The HTTP application (gateway_trio.web.WebApp) in memory, over httpx.ASGITransport: what needs
peers a real test cannot be (non-loopback clients, untrusted proxies), or is faster without sockets.

The ASGI wrapper gives each request what the listener would (ingress attribution, peer facts, the
socket peer; unattributable requests get the listener's 403). Covered: trusted-proxy sources and
identity rules, the shared-secret lockout for remote clients and its sharing with the WebSocket
handshake, loopback never locked out, readiness details, the hook limiter per client, the HTTP
tool deny list from config, hook replays, and the ``none`` mode's browser-origin rule.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing
from rawws import connect_frame
from shell_harness import MemoryTransport, serving

from gateway_core import PeerInfo, httpauth
from gateway_core.auth import AuthRateLimiter, RateLimitPolicy, is_loopback
from gateway_trio import http as plain_http
from gateway_trio.app import Gateway
from gateway_trio.listener import GatewayRef, ingress_of, peer_info
from gateway_trio.runtime import FileLog, GatewaySettings, Paths
from gateway_trio.session import Session

TOKEN = "memory-token-0123456789"
PASSWORD = "memory-password-0123456789"
HOOK_TOKEN = "memory-hook-token-0123456789"
ADMIN = {"plugins": {"entries": {"admin-http-rpc": {"enabled": True}}}}
RATE_LIMITED = {"error": {"message": "Too many failed authentication attempts. Please try again later.", "type": "rate_limited"}}


class Web:
    """One in-memory gateway and its WebApp, reachable from any client address."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.ref = GatewayRef()
        self.ref.gateway = gw

    async def asgi(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        """What the listener does before the app: attribute the request, refuse the unattributable."""
        ip = scope["client"][0]
        headers = list(scope["headers"])
        ingress = ingress_of(self.gw, ip, headers)
        if ingress.refused:
            status, out, body = plain_http.proxy_attribution_required()
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": body})
            return
        scope = {**scope, "extensions": {"gateway.ingress": ingress, "gateway.peer": peer_info(ingress, headers), "gateway.socket_ip": ip}}
        await self.ref.web(scope, receive, send)

    @asynccontextmanager
    async def client(self, ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.asgi, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:18789") as c:
            yield c

    async def ws_connect(self, ip: str, token: str) -> dict[str, Any]:
        """The ``connect`` answer of a WebSocket handshake from ``ip`` (a direct remote peer)."""
        transport = MemoryTransport()
        peer = PeerInfo(client_ip=ip, is_loopback=is_loopback(ip), host="127.0.0.1:18789")
        session = Session(self.gw, peer, transport)
        stop = trio.Event()

        async def reader(s: Session) -> None:
            s.feed_text(json.dumps(connect_frame(token)))
            await stop.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run, reader)
            try:
                with trio.fail_after(30):
                    while True:
                        for frame in transport.frames():
                            if frame.get("id") == "c1":
                                return frame
                        transport.written = trio.Event()
                        await transport.written.wait()
            finally:
                stop.set()
                session.feed_closed(1000)
                nursery.cancel_scope.cancel()


def _gateway(root: Path, config: dict[str, Any], mode: str) -> Gateway:
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    settings = GatewaySettings(
        paths=Paths(profile=None, state_dir=state, config_path=root / "openclaw.json"), config=config, port=18789,
        port_source="default", bind="loopback", hosts=["127.0.0.1"], auth_mode=mode,
        token=TOKEN if mode == "token" else None, password=PASSWORD if mode in ("password", "trusted-proxy") else None,
    )
    gw = Gateway(settings, FileLog(root / "gw.log", console_enabled=False), port=18789)
    gw.services.phase = gw.services.phase.ACCEPTING
    return gw


def run(tmp: Path, body: Callable[[Web], Awaitable[None]], *, config: dict[str, Any] | None = None, mode: str = "token",
        serve: bool = False, clock: trio.abc.Clock | None = None) -> None:
    """``body(web)`` on a fresh in-memory gateway (its tasks running when ``serve``), bounded in time."""
    cfg = {"gateway": {"mode": "local"}, **ADMIN, **(config or {})}

    async def main() -> None:
        gw = _gateway(tmp, cfg, mode)
        with trio.fail_after(120):
            if serve:
                async with serving(gw):
                    await body(Web(gw))
            else:
                await body(Web(gw))

    trio.run(main, clock=clock)


def bearer(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


COMMANDS = {"method": "commands.list"}  # answered by the route itself: no job, no store
RPC = "/api/v1/admin/rpc"


# --------------------------------------------------------------------------- shared secret


def test_wrong_secrets_lock_a_remote_client_out_and_missing_ones_never_count(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("203.0.113.5") as remote, web.client("203.0.113.6") as other:
            for _ in range(25):  # no credential: 401, not counted
                assert (await remote.post(RPC, json=COMMANDS)).status_code == 401
            assert (await remote.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200
            for _ in range(10):
                assert (await remote.post(RPC, json=COMMANDS, headers=bearer("wrong"))).status_code == 401
            locked = await remote.post(RPC, json=COMMANDS, headers=bearer(TOKEN))
            assert (locked.status_code, locked.json()) == (429, RATE_LIMITED)
            assert 290 <= int(locked.headers["retry-after"]) <= 300
            assert (await other.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200

    run(tmp_path, body)


def test_a_success_resets_the_count(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("203.0.113.5") as remote:
            for _ in range(3):
                for _ in range(9):
                    assert (await remote.post(RPC, json=COMMANDS, headers=bearer("wrong"))).status_code == 401
                assert (await remote.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200

    run(tmp_path, body)


def test_loopback_is_never_locked_out_but_waits(tmp_path: Path) -> None:
    """Wrong secrets from loopback are answered after an escalating delay (virtual time here) and never 429."""

    async def body(web: Web) -> None:
        async with web.client("127.0.0.1") as local:
            t0 = trio.current_time()
            for _ in range(12):
                assert (await local.post(RPC, json=COMMANDS, headers=bearer("wrong"))).status_code == 401
            assert trio.current_time() - t0 >= 0.25 + 0.5 + 1 + 2 + 4
            assert (await local.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200

    run(tmp_path, body, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_lockout_is_shared_with_the_websocket_handshake(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("203.0.113.7") as remote:
            for _ in range(10):
                assert (await remote.post(RPC, json=COMMANDS, headers=bearer("wrong"))).status_code == 401
        refused = await web.ws_connect("203.0.113.7", TOKEN)
        assert refused["ok"] is False and refused["error"]["details"]["code"] == "AUTH_RATE_LIMITED", refused
        for _ in range(10):
            assert (await web.ws_connect("203.0.113.8", "wrong"))["ok"] is False
        async with web.client("203.0.113.8") as second:
            r = await second.post(RPC, json=COMMANDS, headers=bearer(TOKEN))
            assert (r.status_code, r.json()) == (429, RATE_LIMITED)
        assert (await web.ws_connect("203.0.113.9", TOKEN))["ok"] is True

    run(tmp_path, body, serve=True)


def test_password_mode(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("203.0.113.5") as remote:
            assert (await remote.post(RPC, json=COMMANDS, headers=bearer(PASSWORD))).status_code == 200
            assert (await remote.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 401

    run(tmp_path, body, mode="password")


# --------------------------------------------------------------------------- probes


def test_readiness_details_only_for_local_or_authenticated_callers(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("127.0.0.1") as local, web.client("203.0.113.5") as remote:
            assert set((await local.get("/readyz")).json()) >= {"ready", "failing", "uptimeMs"}
            assert (await remote.get("/readyz")).json() == {"ready": True}
            for _ in range(15):  # a wrong bearer on a probe is not an attempt that counts
                assert (await remote.get("/readyz", headers=bearer("wrong"))).json() == {"ready": True}
            assert set((await remote.get("/readyz", headers=bearer(TOKEN))).json()) >= {"ready", "failing", "uptimeMs"}
            assert (await remote.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200
            assert (await remote.get("/healthz")).json() == {"ok": True, "status": "live"}
            started = (await remote.get("/startupz")).json()
            assert started == {"ok": True, "status": "started"}

    run(tmp_path, body)


# --------------------------------------------------------------------------- trusted-proxy


PROXY = {"gateway": {"mode": "local", "trustedProxies": ["10.0.0.1", "127.0.0.1"],
                     "auth": {"mode": "trusted-proxy", "trustedProxy": {"userHeader": "x-auth-user",
                                                                        "requiredHeaders": ["x-proxy-secret"],
                                                                        "allowUsers": ["alice"]}}}}


def test_trusted_proxy_sources_and_identity_rules(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        ok = {"X-Forwarded-For": "198.51.100.4", "x-auth-user": "alice", "x-proxy-secret": "s"}
        async with web.client("10.0.0.1") as via_proxy, web.client("10.9.9.9") as untrusted, web.client("127.0.0.1") as local:
            assert (await via_proxy.post(RPC, json=COMMANDS, headers=ok)).status_code == 200
            for missing in ("x-auth-user", "x-proxy-secret"):
                headers = {k: v for k, v in ok.items() if k != missing}
                assert (await via_proxy.post(RPC, json=COMMANDS, headers=headers)).status_code == 401, missing
            bob = await via_proxy.post(RPC, json=COMMANDS, headers={**ok, "x-auth-user": "bob"})
            assert bob.status_code == 401  # not in allowUsers
            # An untrusted peer: with forwarding headers unattributable, without them not a proxy.
            assert (await untrusted.post(RPC, json=COMMANDS, headers=ok)).status_code == 403
            direct = {k: v for k, v in ok.items() if k != "X-Forwarded-For"}
            assert (await untrusted.post(RPC, json=COMMANDS, headers=direct)).status_code == 401  # not a proxy
            # A trusted loopback peer needs allowLoopback; a same-host caller may use the password instead.
            assert (await local.post(RPC, json=COMMANDS, headers=ok)).status_code == 401
            assert (await local.post(RPC, json=COMMANDS, headers=bearer(PASSWORD))).status_code == 200
            assert (await untrusted.post(RPC, json=COMMANDS, headers=bearer(PASSWORD))).status_code == 401

    run(tmp_path, body, config=PROXY, mode="trusted-proxy")


def test_trusted_proxy_callers_carry_their_declared_scopes(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        ok = {"X-Forwarded-For": "198.51.100.4", "x-auth-user": "alice", "x-proxy-secret": "s"}
        async with web.client("10.0.0.1") as via_proxy:
            r = await via_proxy.post("/tools/invoke", json={"tool": "agents_list"}, headers={**ok, "x-openclaw-scopes": "operator.read"})
            assert r.status_code == 403 and r.json()["error"]["details"]["missingScope"] == "operator.write"
            r = await via_proxy.post("/tools/invoke", json={"tool": "agents_list"}, headers={**ok, "x-openclaw-scopes": "operator.write"})
            assert r.status_code == 200
            r = await via_proxy.get("/readyz", headers=ok)
            assert r.json()["ready"] is True and "failing" in r.json()  # an identity the proxy vouches for gets the details, as published
            r = await via_proxy.get("/readyz", headers={"X-Forwarded-For": "203.0.113.7"})  # no user: no details
            assert r.json() == {"ready": True}

    run(tmp_path, body, config=PROXY, mode="trusted-proxy", serve=True)


# --------------------------------------------------------------------------- none


def test_none_mode_admits_a_local_loopback_page_on_any_port() -> None:
    """Regression: a loopback ``Origin`` on another port than the gateway's was refused (published: admitted)."""
    limiter = AuthRateLimiter(RateLimitPolicy())
    secret = httpauth.SharedSecret(mode="none")

    def outcome(origin: str, *, local: bool) -> Any:
        peer = httpauth.HttpPeer(headers={"origin": origin}, client_ip="127.0.0.1" if local else "203.0.113.5",
                                 peer_ip="127.0.0.1" if local else "203.0.113.5", local_direct=local, origin_allowed=False)
        return httpauth.authenticate(secret, peer, limiter, 0)

    for origin in ("http://127.0.0.1", "http://127.0.0.1:1234", "http://localhost:9", "https://[::1]:5"):
        assert isinstance(outcome(origin, local=True), httpauth.Caller), origin
        assert isinstance(outcome(origin, local=False), httpauth.Denied), origin
    for origin in ("http://192.168.1.5", "null", "https://evil.example", "ftp://127.0.0.1"):
        assert isinstance(outcome(origin, local=True), httpauth.Denied), origin


# --------------------------------------------------------------------------- hooks and tools


HOOKS = {"hooks": {"enabled": True, "token": HOOK_TOKEN}}


def test_the_hook_limiter_is_per_client_and_separate_from_the_gateways(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client("203.0.113.5") as one, web.client("203.0.113.6") as two:
            wrong = {"X-OpenClaw-Token": "wrong"}
            for _ in range(20):
                assert (await one.post("/hooks/wake", json={"text": "x"}, headers=wrong)).status_code == 401
            locked = await one.post("/hooks/wake", json={"text": "x"}, headers=wrong)
            assert (locked.status_code, locked.text, locked.headers["retry-after"]) == (429, "Too Many Requests", "60")
            assert (await two.post("/hooks/wake", json={"text": "x"}, headers=wrong)).status_code == 401
            # The gateway's own limiter did not see those: the same client still gets in with the token.
            assert (await one.post(RPC, json=COMMANDS, headers=bearer(TOKEN))).status_code == 200

    run(tmp_path, body, config=HOOKS)


def test_hook_replays_return_the_first_run_and_its_completion(tmp_path: Path) -> None:
    """Regression: the replay key held the generated ``hook:<uuid>`` session, so every replay started a new run."""

    async def body(web: Web) -> None:
        async with web.client() as c:
            headers = {"X-OpenClaw-Token": HOOK_TOKEN, "Idempotency-Key": "once"}
            first = (await c.post("/hooks/agent", json={"message": "hi", "waitForCompletion": True}, headers=headers)).json()
            assert first["completion"] == {"status": "ok", "replyDisposition": "visible", "delivered": False,
                                           "deliveryAttempted": False}
            again = (await c.post("/hooks/agent", json={"message": "hi", "waitForCompletion": True}, headers=headers)).json()
            assert again == first
            quick = (await c.post("/hooks/agent", json={"message": "hi"}, headers=headers)).json()
            assert quick == {"ok": True, "runId": first["runId"]}

    run(tmp_path, body, config=HOOKS, serve=True)


def test_a_replay_that_waits_for_a_run_still_going_gets_its_completion(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        headers = {"X-OpenClaw-Token": HOOK_TOKEN, "Idempotency-Key": "pending"}
        async with web.client() as c:
            started = (await c.post("/hooks/agent", json={"message": "slow one"}, headers=headers)).json()
            waited = (await c.post("/hooks/agent", json={"message": "slow one", "waitForCompletion": True}, headers=headers)).json()
            assert waited["runId"] == started["runId"] and waited["completion"]["status"] == "ok"

    run(tmp_path, body, config=HOOKS, serve=True)


def test_the_configured_tool_deny_list_applies_over_http(tmp_path: Path) -> None:
    async def body(web: Web) -> None:
        async with web.client() as c:
            r = await c.post("/tools/invoke", json={"tool": "agents_list"}, headers=bearer(TOKEN))
            assert (r.status_code, r.json()) == (404, {"ok": False, "error": {"type": "not_found", "message": "Tool not available: agents_list"}})
            r = await c.post("/tools/invoke", json={"tool": "session_status"}, headers=bearer(TOKEN))
            assert r.status_code == 200 and r.json()["ok"] is True

    run(tmp_path, body, config={"gateway": {"mode": "local", "tools": {"deny": ["agents_list"]}}}, serve=True)
