"""Core mode: transcripts replayed against gateway_core in memory, on a virtual clock.

No sockets, no event loop, no sleeping. :class:`SimulatedGateway` plays the application around the
core's :class:`ServerConnection` objects: it accepts authenticated clients with a snapshot, answers
the core methods from small in-memory state, fans out broadcasts, and runs a gateway-wide clock.
The method handlers are deliberately modest (a real gateway reads files and talks to providers);
what is under test here is the protocol: framing, the handshake, validation, authorization,
sequencing, two-stage responses, idempotency, deadlines and close codes.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from msgspec import UNSET

from gateway_core import (
    Admission,
    CloseTransport,
    ConnectionTerminated,
    HandshakeAuthenticated,
    IdempotencyLedger,
    MemoryServices,
    PeerInfo,
    RequestReceived,
    SendPing,
    SendText,
    ServerConnection,
    ServerPolicy,
    SharedSecret,
    Snapshot,
    StateVersion,
    Terminate,
)
from gateway_core import errors as E
from gateway_core.auth import is_loopback
from gateway_core.events import Principal
from gateway_core.frames import PresenceEntry
from gateway_core.idempotency import Final
from gateway_core.server import ConnState

from .runner import Item

WALL0 = 1_800_000_000_000  # the virtual wall clock's epoch ms at t=0
VERSION = "0.1.0-core"
REDACTED = "__OPENCLAW_REDACTED__"


class SimulatedGateway:
    """The application side of many ServerConnections, all on one virtual clock."""

    def __init__(self, auth: str, token: str, password: str) -> None:
        secret = SharedSecret(
            mode=auth,  # type: ignore[arg-type]
            token=token if auth == "token" else None,
            password=password if auth == "password" else None,
        )
        self.services = MemoryServices(secret)
        self.policy = ServerPolicy(server_version=VERSION, boot_id=str(uuid.UUID(int=7)), auto_tick=False)
        self.now = 0.0  # seconds
        self.conns: dict[str, ServerConnection] = {}
        self.inbox: dict[str, deque[Item]] = {}
        self.ledger = IdempotencyLedger()
        self.state_version = StateVersion(presence=1, health=1)
        self.presence: dict[str, PresenceEntry] = {}
        self.heartbeats_enabled = True
        self.log_lines: list[str] = [json.dumps({"time": WALL0, "message": f"gateway {VERSION} started"})]
        self.config_raw = json.dumps({"gateway": {"auth": {"mode": auth, "token": token}}}, indent=2)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._ids = 0
        self.tick_at = 30.0

    # ------------------------------------------------------------------ clock

    @property
    def wall_ms(self) -> int:
        return WALL0 + int(round(self.now * 1000))

    def next_deadline(self) -> float | None:
        candidates = [c.next_deadline() for c in self.conns.values()]
        candidates = [c for c in candidates if c is not None]
        if self._timers:
            candidates.append(self._timers[0][0])
        if any(c.state is ConnState.OPEN for c in self.conns.values()):
            candidates.append(self.tick_at)
        return min(candidates) if candidates else None

    def advance_to(self, t: float) -> None:
        """Move the clock to ``t``, firing every deadline and timer due on the way, in order."""
        while True:
            nxt = self.next_deadline()
            if nxt is None or nxt > t:
                break
            self.now = max(self.now, nxt)
            self._fire_due()
        self.now = max(self.now, t)
        self._fire_due()

    def _fire_due(self) -> None:
        while self._timers and self._timers[0][0] <= self.now:
            _, _, fn = heapq.heappop(self._timers)
            fn()
        if self.tick_at <= self.now:
            for conn in self.conns.values():
                conn.publish("tick", {"ts": self.wall_ms})
            self.tick_at += 30.0
        for conn in list(self.conns.values()):
            d = conn.next_deadline()
            if d is not None and d <= self.now:
                conn.handle_timer(now=self.now, wall_ms=self.wall_ms)
        self.pump()

    def later(self, ms: float, fn: Callable[[], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (self.now + ms / 1000, self._timer_seq, fn))

    # ------------------------------------------------------------------ connections

    def open(self, name: str, peer: dict[str, Any] | None, origin: str | None) -> None:
        self._ids += 1
        ip = (peer or {}).get("ip", "127.0.0.1")
        info = PeerInfo(
            client_ip=ip,
            is_loopback=(peer or {}).get("loopback", is_loopback(ip)),
            forwarded=bool((peer or {}).get("forwarded", False)),
            origin=origin,
            host=(peer or {}).get("host", "127.0.0.1:18789"),
        )
        self.conns[name] = ServerConnection(
            policy=self.policy,
            services=self.services,
            now=self.now,
            wall_ms=self.wall_ms,
            nonce=str(uuid.UUID(int=0x5EED0000 + self._ids, version=4)),
            conn_id=str(uuid.UUID(int=0xC0000 + self._ids, version=4)),
            peer=info,
        )
        self.inbox[name] = deque()
        self.pump()

    def deliver(self, name: str, data: str | bytes) -> None:
        conn = self.conns[name]
        if isinstance(data, bytes):
            conn.receive_bytes(data, now=self.now, wall_ms=self.wall_ms)
        else:
            conn.receive_text(data, now=self.now, wall_ms=self.wall_ms)

    def pump(self) -> None:
        """Drain every connection's actions and events until nothing moves."""
        moved = True
        while moved:
            moved = False
            for name, conn in list(self.conns.items()):
                for action in conn.actions():
                    moved = True
                    self._transport(name, conn, action)
                for event in conn.events():
                    moved = True
                    self._application(name, conn, event)

    def _transport(self, name: str, conn: ServerConnection, action: Any) -> None:
        box = self.inbox[name]
        t = self.now * 1000
        if isinstance(action, SendText):
            box.append(Item("frame", t, frame=json.loads(action.text)))
        elif isinstance(action, CloseTransport):
            box.append(Item("close", t, code=action.code, reason=action.reason))
            conn.receive_closed(action.code, action.reason, now=self.now)  # the client echoes the close
        elif isinstance(action, Terminate):
            box.append(Item("close", t, code=1006, reason=""))
            conn.receive_closed(1006, "", now=self.now)
        elif isinstance(action, SendPing):
            conn.receive_pong(now=self.now)  # clients answer pings

    # ------------------------------------------------------------------ the application

    def _application(self, name: str, conn: ServerConnection, event: Any) -> None:
        if isinstance(event, HandshakeAuthenticated):
            conn.accept(self._snapshot(), now=self.now, wall_ms=self.wall_ms)
            p = event.principal
            if p.presence_tracked and p.role == "operator":
                self.presence[p.conn_id] = PresenceEntry(
                    ts=self.wall_ms,
                    client_id=p.client.id,
                    mode=p.client.mode,
                    platform=p.client.platform,
                    version=p.client.version,
                    ip=p.client_ip,
                    reason="connect",
                    device_id=p.device_id or UNSET,
                    roles=[p.role],
                    scopes=list(p.scope_list),
                )
                self._broadcast_presence()
        elif isinstance(event, RequestReceived):
            self._handle(conn, event)
        elif isinstance(event, ConnectionTerminated):
            p = conn.principal
            if p is not None and p.conn_id in self.presence:
                self.presence[p.conn_id].reason = "disconnect"
                self._broadcast_presence()

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            presence=self._presence_rows(),
            health=self._health(),
            state_version=self.state_version,
            uptime_ms=int(self.now * 1000),
            config_path="/virtual/.openclaw/openclaw.json",
            state_dir="/virtual/.openclaw",
            auth_mode=self.services.secret.mode,
        )

    def _self_row(self) -> PresenceEntry:
        return PresenceEntry(
            ts=self.wall_ms,
            host="core",
            ip="127.0.0.1",
            version=VERSION,
            mode="gateway",
            reason="self",
            text=f"Gateway: core (127.0.0.1) · app {VERSION} · mode gateway · reason self",
        )

    def _presence_rows(self) -> list[PresenceEntry]:
        rows = [self._self_row(), *self.presence.values()]
        return sorted(rows, key=lambda r: -r.ts)

    def _broadcast_presence(self) -> None:
        self.state_version = StateVersion(presence=self.state_version.presence + 1, health=self.state_version.health)
        payload = {"presence": self._presence_rows()}
        for conn in self.conns.values():
            conn.publish("presence", payload, state_version=self.state_version, drop_if_slow=True)

    def _health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "ts": self.wall_ms,
            "durationMs": 0,
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": 1800 if self.heartbeats_enabled else 0,
            "agents": [],
            "sessions": {"path": "/virtual/sessions", "count": 0, "recent": []},
        }

    def shutdown(self, restart_expected_ms: int | None) -> None:
        for conn in self.conns.values():
            conn.begin_shutdown(now=self.now, wall_ms=self.wall_ms, restart_expected_ms=restart_expected_ms)
        self.services.phase = Admission.RESTARTING if restart_expected_ms is not None else Admission.ACCEPTING
        self.pump()

    # ------------------------------------------------------------------ method handlers

    def _handle(self, conn: ServerConnection, ev: RequestReceived) -> None:
        rid, method, params, p = ev.request_id, ev.method, ev.params, ev.principal
        handler = getattr(self, "m_" + method.replace(".", "_").replace("-", "_"), None)
        if handler is None:
            conn.respond_error(rid, E.unavailable(f"{method} is not implemented by this gateway"))
            return
        handler(conn, rid, params, p)

    def m_health(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, self._health())

    def m_status(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, {"runtimeVersion": VERSION, "channelSummary": [], "queuedSystemEvents": []})

    def m_system_presence(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, self._presence_rows())

    def m_system_event(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        self.presence[f"event-{self.wall_ms}"] = PresenceEntry(ts=self.wall_ms, text=params.text)
        self._broadcast_presence()
        conn.respond(rid, {"ok": True})

    def m_last_heartbeat(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, None)

    def m_set_heartbeats(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        self.heartbeats_enabled = params.enabled
        conn.respond(rid, {"ok": True, "enabled": params.enabled})

    def m_wake(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, {"ok": True})

    def m_secrets_reload(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, {"ok": True, "warningCount": 0})

    def m_logs_tail(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        data = "".join(line + "\n" for line in self.log_lines).encode()
        size = len(data)
        limit = params.limit if isinstance(params.limit, int) else 500
        cursor = params.cursor if isinstance(params.cursor, int) else None
        out: dict[str, Any] = {"file": "/virtual/openclaw.log", "cursor": size, "size": size}
        if cursor is None:
            lines = data.decode().splitlines()[-limit:]
        elif cursor > size:
            out["reset"] = True
            lines = data.decode().splitlines()[-limit:]
        else:
            lines = data[cursor:].decode().splitlines()[:limit]
        out["lines"] = lines
        conn.respond(rid, out)

    def _config_hash(self) -> str:
        return hashlib.sha256(self.config_raw.encode()).hexdigest()

    def m_config_get(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        raw = self.config_raw
        secret = self.services.secret
        for value in (secret.token, secret.password):
            if value:
                raw = raw.replace(json.dumps(value), json.dumps(REDACTED))
        conn.respond(
            rid,
            {
                "path": "/virtual/.openclaw/openclaw.json",
                "exists": True,
                "valid": True,
                "raw": raw,
                "hash": self._config_hash(),
                "issues": [],
                "warnings": [],
            },
        )

    def _base_hash_error(self, params: Any) -> Any:
        base = params.base_hash if isinstance(params.base_hash, str) else None
        if base is None:
            return E.invalid_request("config base hash required; re-run config.get and retry")
        if base != self._config_hash():
            return E.invalid_request("config changed since last load; re-run config.get and retry")
        return None

    def m_config_set(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        err = self._base_hash_error(params)
        if err is not None:
            conn.respond_error(rid, err)
            return
        conn.respond_error(rid, E.unavailable("config writes are not implemented by this gateway"))

    m_config_patch = m_config_set
    m_config_apply = m_config_set

    def m_models_list(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, {"models": []})

    def m_channels_status(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(
            rid,
            {
                "ts": self.wall_ms,
                "channelOrder": [],
                "channelLabels": {},
                "channels": {},
                "channelAccounts": {},
                "channelDefaultAccountId": {},
            },
        )

    def m_sessions_list(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(
            rid,
            {
                "ts": self.wall_ms,
                "path": "/virtual/sessions",
                "count": 0,
                "totalCount": 0,
                "limitApplied": 100,
                "nextOffset": None,
                "hasMore": False,
                "owners": [],
                "defaults": {},
                "sessions": [],
            },
        )

    def m_chat_abort(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        conn.respond(rid, {"ok": True, "aborted": False, "runIds": []})

    def m_agent_wait(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        timeout = params.timeout_ms if isinstance(params.timeout_ms, int) else 30_000
        entry = self.ledger.get("agent", params.run_id)
        if entry is not None and entry.final is not None:
            conn.respond(rid, {"runId": params.run_id, "status": "error"})
            return
        self.later(timeout, lambda: conn.respond(rid, {"runId": params.run_id, "status": "timeout"}))

    def m_agent(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        key = params.idempotency_key
        begin = self.ledger.begin("agent", key, self.wall_ms, {"runId": key, "status": "in_flight", "agentId": "main"})
        if begin.status != "new":
            answer = begin.replay()
            if answer.ok:
                conn.respond(rid, answer.payload)
            else:
                assert answer.error is not None
                conn.respond_error(rid, answer.error, payload=answer.payload)
            return
        conn.respond(
            rid, {"runId": key, "agentId": "main", "status": "accepted", "acceptedAt": self.wall_ms}, final=False
        )
        session_key = f"agent:main:explicit:{key}"
        message = "No model provider is configured for this gateway."

        def finish() -> None:
            for seq, data in enumerate(
                ({"phase": "start", "startedAt": self.wall_ms}, {"phase": "error", "error": message}), 1
            ):
                for c in self.conns.values():
                    c.publish(
                        "agent",
                        {
                            "runId": key,
                            "seq": seq,
                            "stream": "lifecycle",
                            "ts": self.wall_ms,
                            "data": data,
                            "sessionKey": session_key,
                            "agentId": "main",
                        },
                    )
            for c in self.conns.values():
                c.publish(
                    "chat",
                    {
                        "runId": key,
                        "sessionKey": session_key,
                        "agentId": "main",
                        "seq": 3,
                        "state": "error",
                        "errorMessage": message,
                    },
                )
            err = E.unavailable(message)
            payload = {"runId": key, "status": "error", "summary": message}
            self.ledger.finish("agent", key, Final(ok=False, payload=payload, error=err), self.wall_ms)
            conn.respond_error(rid, err, payload=payload)

        self.later(50, finish)

    def m_chat_send(self, conn: ServerConnection, rid: str, params: Any, p: Principal) -> None:
        key = params.idempotency_key
        begin = self.ledger.begin("chat", key, self.wall_ms, {"runId": key, "status": "in_flight"})
        if begin.status != "new":
            final = begin.entry.final
            conn.respond(rid, final.payload if final is not None else begin.entry.in_flight_payload)
            return
        conn.respond(rid, {"runId": key, "status": "started"})
        session_key = (
            params.session_key if params.session_key.startswith("agent:") else f"agent:main:{params.session_key}"
        )
        message = "No model provider is configured for this gateway."

        def finish() -> None:
            for c in self.conns.values():
                c.publish(
                    "chat",
                    {
                        "runId": key,
                        "sessionKey": session_key,
                        "agentId": "main",
                        "seq": 1,
                        "state": "error",
                        "errorMessage": message,
                    },
                )
            self.ledger.finish("chat", key, Final(ok=True, payload={"runId": key, "status": "error"}), self.wall_ms)

        self.later(50, finish)


class CoreDriver:
    """Driver over :class:`SimulatedGateway`: every coroutine completes without suspending."""

    name = "core"

    def __init__(self, auth: str = "token", token: str = "T", password: str = "P") -> None:
        self.gw = SimulatedGateway(auth, token, password)

    def now_ms(self) -> float:
        return self.gw.now * 1000

    async def open(self, conn: str, *, peer: dict[str, Any] | None, origin: str | None) -> None:
        self.gw.open(conn, peer, origin)

    async def send(self, conn: str, data: str | bytes) -> None:
        self.gw.deliver(conn, data)
        self.gw.pump()

    async def send_burst(self, conn: str, items: list[str | bytes]) -> None:
        # Everything arrives before the application gets to run: frames after the connect land
        # while it is "being processed", which is what the burst cases exercise.
        for data in items:
            self.gw.deliver(conn, data)
        self.gw.pump()

    async def next_item(self, conn: str, timeout_ms: float) -> Item | None:
        box = self.gw.inbox[conn]
        limit = self.gw.now + timeout_ms / 1000
        while not box:
            nxt = self.gw.next_deadline()
            if nxt is None or nxt > limit:
                self.gw.advance_to(limit)
                return box.popleft() if box else None
            self.gw.advance_to(nxt)
        return box.popleft()

    async def wait(self, ms: float) -> None:
        self.gw.advance_to(self.gw.now + ms / 1000)

    async def close(self, conn: str, code: int, reason: str) -> None:
        c = self.gw.conns[conn]
        c.receive_closed(code, reason, now=self.gw.now)
        self.gw.pump()

    async def gateway(self, action: dict[str, Any]) -> None:
        kind = action.get("action")
        if kind == "shutdown":
            self.gw.shutdown(None)
        elif kind == "restart":
            self.gw.shutdown(int(action.get("restartExpectedMs", 1500)))
        elif kind == "starting":
            self.gw.services.phase = Admission.STARTING
        elif kind == "ready":
            self.gw.services.phase = Admission.ACCEPTING
        else:
            raise ValueError(f"unknown gateway action {kind!r}")

    async def aclose(self) -> None:
        return None


def run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends (core mode) to completion without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a core-mode coroutine tried to suspend; core mode must never wait")


__all__ = ["CoreDriver", "SimulatedGateway", "run_sync"]
