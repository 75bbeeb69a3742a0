"""The gateway application: connection registry, broadcasts, presence, health, and the core methods.

Sessions hand every authorized, validated request to :meth:`Gateway.dispatch`; the handlers here
produce real data from the gateway's own state (its log file, its config file, its identity, its
presence table, its run table). Method names of the catalogue that this gateway does not implement
keep their scope classification in the core and answer ``UNAVAILABLE`` here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyjson5
import trio
from msgspec import UNSET

from gateway_core import Admission, RequestReceived, ServerPolicy, SharedSecret, Snapshot, StateVersion
from gateway_core import errors as E
from gateway_core.auth import RateLimitPolicy
from gateway_core.config import config_json_schema, schema_lookup, validate_config
from gateway_core.events import HandshakeFailed, Principal
from gateway_core.frames import PresenceEntry
from gateway_core.idempotency import Final, IdempotencyLedger
from gateway_core.ingress import parse_trusted_proxies
from gateway_core.origin import seed_origins

from . import _runtime
from .filelog import FileLog, record_filter, tail
from .session import DeadlineScheduler, Session
from .settings import GatewaySettings
from .state import GatewayIdentity, PersistentServices, StorageHealth, atomic_write, describe_os_error
from .wslog import WsLog

VERSION = "2026.9.6-py.0.1.0"
REDACTED = "__OPENCLAW_REDACTED__"
TICK_INTERVAL_S = 30.0
HEALTH_REFRESH_S = 60.0
PRESENCE_TTL_MS = 5 * 60_000
PRESENCE_MAX = 200
#: Finished runs kept for agent.wait / chat.abort (and how long at most).
RUNS_MAX = 1000
RUN_TTL_MS = 5 * 60_000
#: ``logs.tail`` reads at once, gateway-wide: each holds up to 1 MB of lines (2-3 MB as str).
LOG_READERS = 1
NO_PROVIDER = "No model provider is configured for this gateway."
HEARTBEAT_EVERY_MS = 30 * 60_000

#: Methods this gateway implements (advertised in hello-ok; everything else answers UNAVAILABLE).
IMPLEMENTED = frozenset(
    {
        "health",
        "status",
        "system-presence",
        "system-event",
        "last-heartbeat",
        "set-heartbeats",
        "gateway.identity.get",
        "logs.tail",
        "channels.status",
        "models.list",
        "sessions.list",
        "sessions.subscribe",
        "secrets.reload",
        "wake",
        "agent",
        "agent.wait",
        "chat.send",
        "chat.abort",
        "config.get",
        "config.set",
        "config.patch",
        "config.apply",
        "config.schema",
        "config.schema.lookup",
    }
)


class PresenceTable:
    """Presence rows by key, in the order they were last updated, at most ``cap`` of them.

    Bounded whatever the churn (the published gateway keeps 200 rows): a new row past the cap
    evicts the least recently updated one, and expired rows leave from the old end, so building
    the broadcast list costs O(cap), never O(connections ever seen).
    """

    def __init__(self, cap: int = PRESENCE_MAX, ttl_ms: int = PRESENCE_TTL_MS) -> None:
        self.cap = cap
        self.ttl_ms = ttl_ms
        self._rows: OrderedDict[str, PresenceEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> PresenceEntry | None:
        return self._rows.get(key)

    def put(self, key: str, row: PresenceEntry) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.cap:
            self._rows.popitem(last=False)

    def touch(self, key: str, ts: int, reason: str | None = None) -> bool:
        """Refresh a row's ``ts`` (and ``reason``); False when there is no such row."""
        row = self._rows.get(key)
        if row is None:
            return False
        row.ts = ts
        if reason is not None:
            row.reason = reason
        self._rows.move_to_end(key)
        return True

    def newest(self, now_ms: int, limit: int) -> list[PresenceEntry]:
        """Up to ``limit`` rows, newest first, after dropping the expired ones."""
        rows = self._rows
        while rows:
            key, row = next(iter(rows.items()))
            if now_ms - row.ts <= self.ttl_ms:
                break
            del rows[key]
        out: list[PresenceEntry] = []
        for row in reversed(rows.values()):
            if len(out) >= limit:
                break
            out.append(row)
        return out


@dataclass
class Run:
    """One agent/chat run in the run table."""

    run_id: str
    session_key: str
    started_at: int
    status: str = "running"
    ended_at: int | None = None
    error: str | None = None
    done: trio.Event = field(default_factory=trio.Event)


def _client_text(exc: Exception) -> str:
    """What a client is told about a handler's exception: an OS error without its path."""
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return str(exc) or type(exc).__name__


def _redact(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, str) and value in secrets:
        return REDACTED
    return value


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def rate_limit_policy(config: dict[str, Any] | None) -> RateLimitPolicy:
    """``gateway.auth.rateLimit`` over the §6.5 defaults."""
    raw = (((config or {}).get("gateway") or {}).get("auth") or {}).get("rateLimit") or {}
    defaults = RateLimitPolicy()
    return RateLimitPolicy(
        max_attempts=raw.get("maxAttempts", defaults.max_attempts),
        window_ms=raw.get("windowMs", defaults.window_ms),
        lockout_ms=raw.get("lockoutMs", defaults.lockout_ms),
        exempt_loopback=raw.get("exemptLoopback", defaults.exempt_loopback),
    )


def _gateway_section(config: dict[str, Any] | None) -> dict[str, Any]:
    section = (config or {}).get("gateway")
    return section if isinstance(section, dict) else {}


def allowed_origins(config: dict[str, Any] | None) -> tuple[str, ...]:
    """``gateway.controlUi.allowedOrigins`` (browser origins admitted besides the local ones)."""
    ui = _gateway_section(config).get("controlUi") or {}
    return tuple(o for o in ui.get("allowedOrigins") or () if isinstance(o, str))


def host_header_origin_fallback(config: dict[str, Any] | None) -> bool:
    """``gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback``."""
    ui = _gateway_section(config).get("controlUi") or {}
    return ui.get("dangerouslyAllowHostHeaderOriginFallback") is True


def origin_policy_for(config: dict[str, Any] | None, bind: str, port: int | None) -> tuple[tuple[str, ...], bool, bool]:
    """(allowed origins, host-header fallback, seeded?) for this runtime (runtime-cli.md §5.4)."""
    allowed, fallback = allowed_origins(config), host_header_origin_fallback(config)
    if port and not fallback and not any(o.strip() for o in allowed):
        seeded = seed_origins(bind, port, _gateway_section(config).get("customBindHost"))
        if seeded:
            return seeded, fallback, True
    return allowed, fallback, False


def trusted_proxies(config: dict[str, Any] | None) -> tuple[Any, ...]:
    """``gateway.trustedProxies`` as networks (entries that do not parse are ignored)."""
    raw = _gateway_section(config).get("trustedProxies")
    return parse_trusted_proxies(raw if isinstance(raw, list) else ())


class Gateway:
    """Application state shared by every session of one server run."""

    def __init__(
        self,
        settings: GatewaySettings,
        log: FileLog,
        *,
        restart_count: int = 0,
        reload_state: Any = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.reload_state = reload_state
        self.log = log
        #: The WebSocket traffic log (``--ws-log``/``--verbose``, runtime-cli.md §9.3).
        self.ws_log = WsLog(
            settings.ws_log, verbose=settings.verbose, emit=lambda level, line: log.log(level, "gateway/ws", line)
        )
        self.secret = SharedSecret(
            mode=settings.auth_mode,  # type: ignore[arg-type]
            token=settings.token,
            password=settings.password,
        )
        self.storage = StorageHealth(lambda level, line: getattr(log, level)("storage", line))
        self.services = PersistentServices(
            settings.paths.state_dir,
            lambda: self.secret,
            rate_limit=rate_limit_policy(settings.config),
            storage=self.storage,
        )
        self.identity = GatewayIdentity(settings.paths.state_dir)
        self.boot_id = _runtime.new_uuid()
        self.port = port or settings.port or None
        origins, fallback, seeded = origin_policy_for(settings.config, settings.bind, self.port)
        if seeded:
            log.info(
                "gateway",
                f"seeded gateway.controlUi.allowedOrigins {json.dumps(list(origins), separators=(',', ':'))} "
                f"for bind={settings.bind} (required since v2026.2.26; see issue #29385). Applied for this runtime "
                "without writing config; add other origins to gateway.controlUi.allowedOrigins if needed.",
            )
        self.trusted_proxies = trusted_proxies(settings.config)
        self.allow_real_ip_fallback = _gateway_section(settings.config).get("allowRealIpFallback") is True
        self.policy = ServerPolicy(
            server_version=VERSION,
            boot_id=self.boot_id,
            auto_tick=False,
            implemented_methods=IMPLEMENTED,
            handshake_timeout_ms=int(os.environ.get("OPENCLAW_HANDSHAKE_TIMEOUT_MS") or 15_000),
            allowed_origins=origins,
            host_header_origin_fallback=fallback,
            port=self.port,
        )
        self.sessions: dict[str, Session] = {}
        self.started = _runtime.now()
        self.state_version = StateVersion(presence=1, health=1)
        self.presence = PresenceTable()
        self.health_cache: dict[str, Any] | None = None
        self._health_raw: msgspec.Raw | None = None
        self.health_at = -math.inf
        self.heartbeats_enabled = True
        self.last_heartbeat: Any = None
        self.system_events: list[str] = []
        self.ledger = IdempotencyLedger()
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self.closing = False
        self._drained: trio.Event | None = None
        self.restart_count = restart_count
        self._ticker_scope = trio.CancelScope()
        self.scheduler = DeadlineScheduler()
        self.log_readers = trio.CapacityLimiter(LOG_READERS)
        self.host = socket.gethostname()
        self.handlers: dict[str, Callable[[Session, RequestReceived], None]] = {
            name: getattr(self, "m_" + name.replace(".", "_").replace("-", "_")) for name in IMPLEMENTED
        }

    # ------------------------------------------------------------------ registry

    @property
    def uptime_ms(self) -> int:
        return int((_runtime.now() - self.started) * 1000)

    def admitted(self, session: Session, p: Principal) -> None:
        self.sessions[session.conn_id] = session
        # Remember the shared secret this client proved, so a rotation can close it (4001).
        if p.auth_method == "token":
            session.auth_secret = self.secret.token
        elif p.auth_method == "password":
            session.auth_secret = self.secret.password
        self._release_preauth(session)
        if p.presence_tracked:
            w = _runtime.wall_ms()
            self.presence.put(
                session.conn_id,
                PresenceEntry(
                    ts=w,
                    client_id=p.client.id,
                    host=p.client.display_name if p.client.display_name is not UNSET else UNSET,
                    ip=p.client_ip,
                    version=p.client.version,
                    platform=p.client.platform,
                    device_family=p.client.device_family,
                    mode=p.client.mode,
                    reason="connect",
                    online_since=w,
                    device_id=p.device_id or UNSET,
                    roles=[p.role],
                    scopes=list(p.scope_list),
                    instance_id=p.client.instance_id,
                ),
            )
            self.broadcast_presence()
        if self.settings.verbose:
            self.log.debug("gateway/ws", f"← connect {p.client.id}/{p.client.mode} conn={session.conn_id[:8]}")

    def unregister(self, session: Session) -> None:
        self._release_preauth(session)
        if self.sessions.pop(session.conn_id, None) is None:
            return
        if self.presence.touch(session.conn_id, _runtime.wall_ms(), "disconnect"):
            self.broadcast_presence()

    def apply_hot(self, paths: set[str], config: dict[str, Any] | None) -> list[str]:
        """Apply hot-class config paths that have a live consumer; returns the ones applied."""
        done: list[str] = []
        if any(p.startswith("gateway.auth.rateLimit") for p in paths):
            self.services.rate_limiter.policy = rate_limit_policy(config)  # counters are kept
            done.append("gateway.auth.rateLimit")
        ui_keys = ("gateway.controlUi.allowedOrigins", "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback")
        touched = [k for k in ui_keys if any(p.startswith(k) for p in paths)]
        if touched:
            origins, fallback, _ = origin_policy_for(config, self.settings.bind, self.port)
            self.policy = msgspec.structs.replace(
                self.policy, allowed_origins=origins, host_header_origin_fallback=fallback
            )
            done.extend(touched)
        if any(p.startswith(("gateway.trustedProxies", "gateway.allowRealIpFallback")) for p in paths):
            self.trusted_proxies = trusted_proxies(config)
            self.allow_real_ip_fallback = _gateway_section(config).get("allowRealIpFallback") is True
            done.extend(
                k
                for k in ("gateway.trustedProxies", "gateway.allowRealIpFallback")
                if any(p.startswith(k) for p in paths)
            )
        return done

    def rotate_secret(self, secret: SharedSecret) -> int:
        """Use ``secret`` from now on; close clients admitted with the old one (4001). Returns how many."""
        self.secret = secret
        current = {secret.token, secret.password} - {None}
        closed = 0
        for session in list(self.sessions.values()):
            if session.auth_secret is not None and session.auth_secret not in current:
                session.close(4001, "gateway auth changed")
                closed += 1
        return closed

    def touch_presence(self, session: Session) -> None:
        self.presence.touch(session.conn_id, _runtime.wall_ms())

    def _release_preauth(self, session: Session) -> None:
        slot, session.socket_slot = session.socket_slot, None
        if slot is not None:
            slot.admitted()

    def log_handshake_failure(self, session: Session, event: HandshakeFailed) -> None:
        code = event.error.code if event.error is not None else "-"
        self.log.warn(
            "gateway/ws",
            f"handshake refused conn={session.conn_id[:8]} ip={session.peer.client_ip} "
            f"close={event.close_code} code={code} reason={event.close_reason!r}",
        )

    # ------------------------------------------------------------------ broadcasts

    def broadcast(self, event: str, payload: Any, *, state_version: Any = None, drop_if_slow: bool = False) -> None:
        """One event to every admitted client: the payload is encoded once, each client's frame
        differs only in its ``seq`` (the core gates by scope and handles back-pressure)."""
        if not self.sessions:
            return
        raw = payload if isinstance(payload, msgspec.Raw) else msgspec.Raw(msgspec.json.encode(payload))
        now = _runtime.now()
        for session in list(self.sessions.values()):
            session.publish(event, raw, state_version=state_version, drop_if_slow=drop_if_slow, now=now)

    def _self_row(self) -> PresenceEntry:
        ip = "127.0.0.1"
        return PresenceEntry(
            ts=_runtime.wall_ms(),
            host=self.host,
            ip=ip,
            version=VERSION,
            platform=f"{platform.system().lower()} {platform.release()}",
            device_family=platform.system(),
            mode="gateway",
            reason="self",
            instance_id=self.boot_id,
            text=f"Gateway: {self.host} ({ip}) · app {VERSION} · mode gateway · reason self",
        )

    def presence_rows(self) -> list[PresenceEntry]:
        return [self._self_row(), *self.presence.newest(_runtime.wall_ms(), PRESENCE_MAX - 1)]

    def broadcast_presence(self) -> None:
        self.state_version = StateVersion(presence=self.state_version.presence + 1, health=self.state_version.health)
        self.broadcast(
            "presence", {"presence": self.presence_rows()}, state_version=self.state_version, drop_if_slow=True
        )

    def snapshot(self) -> Snapshot:
        return Snapshot(
            presence=self.presence_rows(),
            health=self.health_cache or {},
            state_version=self.state_version,
            uptime_ms=self.uptime_ms,
            suspension={"phase": "accepting"},
            session_defaults={
                "defaultAgentId": "main",
                "modelConfigured": False,
                "mainKey": "main",
                "mainSessionKey": "agent:main:main",
                "scope": "per-sender",
            },
            config_path=str(self.settings.paths.config_path),
            state_dir=str(self.settings.paths.state_dir),
            auth_mode=self.secret.mode,
        )

    def refresh_health(self) -> dict[str, Any]:
        started = _runtime.now()
        sessions = {"path": str(self.settings.paths.state_dir / "agents" / "main"), "count": 0, "recent": []}
        snap = {
            "ok": True,
            "ts": _runtime.wall_ms(),
            "durationMs": 0,
            "configReload": self.reload_state.health() if self.reload_state else {"hotReloadStatus": "disabled"},
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": HEARTBEAT_EVERY_MS // 1000 if self.heartbeats_enabled else 0,
            "defaultAgentId": "main",
            "agents": [
                {
                    "agentId": "main",
                    "isDefault": True,
                    "heartbeat": {
                        "enabled": self.heartbeats_enabled,
                        "every": "30m",
                        "everyMs": HEARTBEAT_EVERY_MS,
                        "prompt": "",
                        "target": "owner",
                        "ackMaxChars": 300,
                    },
                    "sessions": sessions,
                }
            ],
            "sessions": sessions,
        }
        snap["durationMs"] = int((_runtime.now() - started) * 1000)
        self.health_cache = snap
        self._health_raw = None
        self.health_at = _runtime.now()
        self.state_version = StateVersion(presence=self.state_version.presence, health=self.state_version.health + 1)
        return snap

    async def ticker(self) -> None:
        """``tick`` every 30 s to everyone; a health refresh (and ``health`` event) every 60 s."""
        next_tick = _runtime.now() + TICK_INTERVAL_S
        with self._ticker_scope:
            await self._tick_forever(next_tick)

    async def _tick_forever(self, next_tick: float) -> None:
        while True:
            await trio.sleep_until(next_tick)
            next_tick += TICK_INTERVAL_S
            self.broadcast("tick", {"ts": _runtime.wall_ms()})
            if _runtime.now() - self.health_at >= HEALTH_REFRESH_S - 1:
                snap = self.refresh_health()
                self.broadcast("health", snap, state_version=self.state_version)

    def close_admission(self) -> None:
        """Stop taking work: new sockets get 503, new requests "unavailable during gateway restart"
        (runtime-cli.md §8.2 step 1); requests already in flight go on."""
        self.closing = True
        self._ticker_scope.cancel()
        self.services.phase = Admission.DRAINING

    def inflight(self) -> int:
        """Requests of admitted clients that have not been finally answered."""
        return sum(s.core.inflight for s in self.sessions.values())

    def request_done(self) -> None:
        if self._drained is not None:
            self._drained.set()

    async def drain(self, budget_s: float, *, restart: bool) -> int:
        """Let the requests in flight finish within ``budget_s`` (§8.2 step 2); the ones still
        running then are cancelled and answered ``UNAVAILABLE``. Returns how many were failed."""
        with trio.move_on_after(budget_s):
            while self.inflight():
                self._drained = trio.Event()
                await self._drained.wait()
        self._drained = None
        word = "restarting" if restart else "stopping"

        def interrupted(method: str) -> Any:
            return E.unavailable(
                f"{method} interrupted: gateway {word}",
                {"method": method, "reason": "shutdown-drain-budget"},
                retryable=True,
                retry_after_ms=1000,
            )

        return sum(s.fail_pending(interrupted) for s in list(self.sessions.values()))

    def begin_shutdown(self, restart_expected_ms: int | None) -> None:
        """Tell every client (``shutdown`` event, then close 1012; §8.2 steps 3-4)."""
        self.close_admission()
        for session in list(self.sessions.values()):
            session.begin_shutdown(restart_expected_ms)

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, session: Session, ev: RequestReceived) -> None:
        session.request_started(ev.request_id, ev.method)
        handler = self.handlers.get(ev.method)
        if handler is None:
            session.respond_error(
                ev.request_id,
                E.unavailable(f"{ev.method} is not implemented by this gateway", {"method": ev.method}),
            )
            return
        try:
            handler(session, ev)
        except Exception as exc:  # noqa: BLE001 - §7.3 step 13: a thrown handler answers UNAVAILABLE
            self.log.error("gateway/ws", f"handler {ev.method} failed: {exc!r}")
            if not session.closed:
                session.respond_error(ev.request_id, E.unavailable(_client_text(exc)))

    def _async(self, session: Session, ev: RequestReceived, fn: Callable[[], Any]) -> None:
        """Run an async handler body in the session's nursery; it answers ``ev`` when done."""

        async def runner() -> None:
            if session.close_if_slow():
                return  # its answers would only be dropped: do not even produce them
            try:
                payload = await fn()
            except E.RemoteProtocolError as exc:
                if exc.error is not None:
                    session.respond_error(ev.request_id, exc.error)
                return
            except Exception as exc:  # noqa: BLE001
                self.log.error("gateway/ws", f"handler {ev.method} failed: {exc!r}")
                session.respond_error(ev.request_id, E.unavailable(_client_text(exc)))
                return
            session.respond(ev.request_id, payload)

        session.spawn(runner, request_id=ev.request_id)

    # ------------------------------------------------------------------ methods

    def m_health(self, s: Session, ev: RequestReceived) -> None:
        probe = isinstance(ev.params, dict) and ev.params.get("probe") is True
        if probe or self.health_cache is None or _runtime.now() - self.health_at >= HEALTH_REFRESH_S:
            self.refresh_health()
        if self._health_raw is None:
            assert self.health_cache is not None
            # Encoded once per refresh: the hot path answers with the pre-serialised JSON.
            snap = {**self.health_cache, "modelRuntime": {"degraded": False, "pendingAgents": []}}
            self._health_raw = msgspec.Raw(msgspec.json.encode(snap))
        s.respond(ev.request_id, self._health_raw)

    def m_status(self, s: Session, ev: RequestReceived) -> None:
        admin = "operator.admin" in ev.principal.scopes
        s.respond(
            ev.request_id,
            {
                "runtimeVersion": VERSION,
                "hostDesktop": {"enabled": False, "state": "disabled"},
                "heartbeat": {
                    "defaultAgentId": "main",
                    "agents": [
                        {
                            "agentId": "main",
                            "enabled": self.heartbeats_enabled,
                            "every": "30m",
                            "everyMs": HEARTBEAT_EVERY_MS,
                        }
                    ],
                },
                "channelSummary": [],
                "queuedSystemEvents": list(self.system_events),
                "degradedSecretOwners": [],
                "degradedPlugins": [],
                "tasks": {"total": 0, "active": 0, "terminal": 0, "failures": 0},
                "sessions": {
                    "paths": [str(self.settings.paths.state_dir / "agents")] if admin else [],
                    "count": 0,
                    "defaults": {"model": None, "contextTokens": None},
                    "recent": [],
                    "byAgent": [],
                },
                "modelRuntime": {"degraded": False, "pendingAgents": []},
                "workerPools": {},
                "pid": os.getpid(),
            },
        )

    def m_system_presence(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, self.presence_rows())

    def m_system_event(self, s: Session, ev: RequestReceived) -> None:
        p = ev.params
        key = p.device_id if p.device_id is not UNSET else (p.instance_id if p.instance_id is not UNSET else None)
        key = key or f"event:{ev.principal.conn_id}"
        self.presence.put(
            key,
            PresenceEntry(
                ts=_runtime.wall_ms(),
                text=p.text,
                host=p.host,
                ip=p.ip,
                mode=p.mode,
                version=p.version,
                platform=p.platform,
                device_family=p.device_family,
                reason=p.reason,
                tags=p.tags,
            ),
        )
        self.system_events.append(p.text)
        del self.system_events[:-50]
        self.broadcast_presence()
        s.respond(ev.request_id, {"ok": True})

    def m_last_heartbeat(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, self.last_heartbeat)

    def m_set_heartbeats(self, s: Session, ev: RequestReceived) -> None:
        self.heartbeats_enabled = ev.params.enabled
        self.health_cache = None  # heartbeatSeconds changed
        s.respond(ev.request_id, {"ok": True, "enabled": ev.params.enabled})

    def m_gateway_identity_get(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, self.identity.as_payload())

    def m_logs_tail(self, s: Session, ev: RequestReceived) -> None:
        """The tail of this gateway's file log: only its own records (the file may be shared by
        every gateway on the machine), newer than ``now - sinceMs`` when given (runtime-cli.md §9.4)."""
        p = ev.params
        cursor = p.cursor if p.cursor is not UNSET else None
        limit = p.limit if p.limit is not UNSET else 500
        max_bytes = p.max_bytes if p.max_bytes is not UNSET else 250_000
        since = _runtime.wall_ms() - p.since_ms if p.since_ms is not UNSET else None
        keep = record_filter(state_dir=self.settings.paths.state_dir, since_epoch_ms=since)
        path = self.log.path

        async def read() -> Any:
            try:
                return await trio.to_thread.run_sync(
                    lambda: tail(path, cursor=cursor, limit=limit, max_bytes=max_bytes, keep=keep),
                    limiter=self.log_readers,
                    abandon_on_cancel=True,
                )
            except OSError as exc:
                raise E.RemoteProtocolError(E.unavailable(f"log read failed: {describe_os_error(exc)}"), 0) from None

        self._async(s, ev, read)

    def m_channels_status(self, s: Session, ev: RequestReceived) -> None:
        s.respond(
            ev.request_id,
            {
                "ts": _runtime.wall_ms(),
                "channelOrder": [],
                "channelLabels": {},
                "channelDetailLabels": {},
                "channelSystemImages": {},
                "channelMeta": [],
                "channels": {},
                "channelAccounts": {},
                "channelDefaultAccountId": {},
                "statusIssues": [],
            },
        )

    def m_models_list(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, {"models": []})

    def _sessions_list(self) -> dict[str, Any]:
        return {
            "ts": _runtime.wall_ms(),
            "path": str(self.settings.paths.state_dir / "agents"),
            "count": 0,
            "totalCount": 0,
            "limitApplied": 100,
            "nextOffset": None,
            "hasMore": False,
            "owners": [],
            "defaults": {"modelProvider": None, "model": None, "contextTokens": None},
            "sessions": [],
        }

    def m_sessions_list(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, self._sessions_list())

    def m_sessions_subscribe(self, s: Session, ev: RequestReceived) -> None:
        s.subscriptions.add("sessions")
        raw = msgspec.to_builtins(ev.params)
        s.respond(ev.request_id, {"subscribed": True, "list": self._sessions_list()} if raw else {"subscribed": True})

    def m_secrets_reload(self, s: Session, ev: RequestReceived) -> None:
        """Re-resolve the credentials (SecretRefs, env) now; a changed secret takes effect at once."""
        resolver = self.reload_state.resolve_again if self.reload_state is not None else None
        if resolver is not None:
            try:
                new = resolver()
            except Exception as exc:  # noqa: BLE001 - any resolution failure keeps the old snapshot
                self.log.warn("secrets", f"secrets.reload failed: {getattr(exc, 'message', exc)}")
                s.respond_error(ev.request_id, E.unavailable("secrets.reload failed"))
                return
            changed = (new.auth_mode, new.token, new.password) != (
                self.secret.mode,
                self.secret.token,
                self.secret.password,
            )
            s.respond(ev.request_id, {"ok": True, "warningCount": 0})  # answered before any 4001 close
            if changed:
                closed = self.rotate_secret(
                    SharedSecret(mode=new.auth_mode, token=new.token, password=new.password)  # type: ignore[arg-type]
                )
                self.log.info("secrets", f"secrets reloaded: gateway credential changed; closed {closed} connection(s)")
            return
        s.respond(ev.request_id, {"ok": True, "warningCount": 0})

    def m_wake(self, s: Session, ev: RequestReceived) -> None:
        key = ev.params.session_key
        if isinstance(key, str) and ":subagent:" in key:
            s.respond_error(ev.request_id, E.invalid_request("wake sessionKey cannot target a subagent session"))
            return
        self.system_events.append(ev.params.text)
        del self.system_events[:-50]
        s.respond(ev.request_id, {"ok": True})

    # runs (no model provider yet: every run ends in an error, as the published gateway's do) ---

    def _add_run(self, run: Run) -> Run:
        """Record ``run``; finished runs leave after RUN_TTL_MS, and past RUNS_MAX oldest first
        (O(RUNS_MAX) per new run; runs are rare next to other requests)."""
        runs = self.runs
        runs[run.run_id] = run
        runs.move_to_end(run.run_id)
        now = _runtime.wall_ms()
        finished = [k for k, r in runs.items() if r is not run and r.done.is_set()]
        stale = {k for k in finished if now - (runs[k].ended_at or now) > RUN_TTL_MS}
        excess = max(0, len(runs) - len(stale) - RUNS_MAX)
        for key in [*stale, *[k for k in finished if k not in stale][:excess]]:
            del runs[key]
        return run

    def _finish_run(self, run: Run, error: str) -> None:
        run.status = "error"
        run.error = error
        run.ended_at = _runtime.wall_ms()
        run.done.set()

    def m_agent(self, s: Session, ev: RequestReceived) -> None:
        key = ev.params.idempotency_key
        begin = self.ledger.begin(
            "agent", key, _runtime.wall_ms(), {"runId": key, "status": "in_flight", "agentId": "main"}
        )
        if begin.status != "new":
            answer = begin.replay()
            if answer.ok:
                s.respond(ev.request_id, answer.payload)
            else:
                s.respond_error(ev.request_id, answer.error, payload=answer.payload)
            return
        session_key = ev.params.session_key if ev.params.session_key is not UNSET else f"agent:main:explicit:{key}"
        run = self._add_run(Run(key, session_key, _runtime.wall_ms()))
        s.respond(
            ev.request_id,
            {"runId": key, "agentId": "main", "status": "accepted", "acceptedAt": run.started_at},
            final=False,
        )

        async def execute() -> None:
            await trio.sleep(0)
            base = {"runId": key, "sessionKey": session_key, "sessionId": key, "agentId": "main"}
            self.broadcast(
                "agent",
                {
                    **base,
                    "stream": "lifecycle",
                    "seq": 1,
                    "ts": _runtime.wall_ms(),
                    "data": {"phase": "start", "startedAt": run.started_at},
                },
            )
            self._finish_run(run, NO_PROVIDER)
            self.broadcast(
                "agent",
                {
                    **base,
                    "stream": "lifecycle",
                    "seq": 2,
                    "ts": _runtime.wall_ms(),
                    "data": {
                        "phase": "error",
                        "startedAt": run.started_at,
                        "endedAt": run.ended_at,
                        "error": NO_PROVIDER,
                    },
                },
            )
            self.broadcast(
                "chat",
                {
                    "runId": key,
                    "sessionKey": session_key,
                    "agentId": "main",
                    "seq": 3,
                    "state": "error",
                    "errorMessage": NO_PROVIDER,
                },
            )
            err = E.unavailable(NO_PROVIDER)
            payload = {"runId": key, "status": "error", "summary": NO_PROVIDER}
            self.ledger.finish("agent", key, Final(ok=False, payload=payload, error=err), _runtime.wall_ms())
            s.respond_error(ev.request_id, err, payload=payload)

        s.spawn(execute)

    def m_chat_send(self, s: Session, ev: RequestReceived) -> None:
        key = ev.params.idempotency_key
        begin = self.ledger.begin("chat", key, _runtime.wall_ms(), {"runId": key, "status": "in_flight"})
        if begin.status != "new":
            final = begin.entry.final
            s.respond(ev.request_id, final.payload if final is not None else begin.entry.in_flight_payload)
            return
        raw_key = ev.params.session_key
        session_key = raw_key if raw_key.startswith("agent:") else f"agent:main:{raw_key}"
        run = self._add_run(Run(key, session_key, _runtime.wall_ms()))
        s.respond(ev.request_id, {"runId": key, "status": "started"})

        async def execute() -> None:
            await trio.sleep(0)
            self._finish_run(run, NO_PROVIDER)
            self.broadcast(
                "chat",
                {
                    "runId": key,
                    "sessionKey": session_key,
                    "agentId": "main",
                    "seq": 1,
                    "state": "error",
                    "errorMessage": NO_PROVIDER,
                },
            )
            self.ledger.finish(
                "chat", key, Final(ok=True, payload={"runId": key, "status": "error"}), _runtime.wall_ms()
            )

        s.spawn(execute)

    def m_agent_wait(self, s: Session, ev: RequestReceived) -> None:
        run_id = ev.params.run_id
        timeout_ms = ev.params.timeout_ms if ev.params.timeout_ms is not UNSET else 30_000

        async def wait() -> Any:
            run = self.runs.get(run_id)
            if run is not None:
                with trio.move_on_after(timeout_ms / 1000):
                    await run.done.wait()
                if run.done.is_set():
                    out: dict[str, Any] = {
                        "runId": run_id,
                        "status": run.status,
                        "startedAt": run.started_at,
                        "endedAt": run.ended_at,
                    }
                    if run.error:
                        out["error"] = run.error
                    return out
            else:
                await trio.sleep(timeout_ms / 1000)
            return {"runId": run_id, "status": "timeout"}

        self._async(s, ev, wait)

    def m_chat_abort(self, s: Session, ev: RequestReceived) -> None:
        key = ev.params.session_key
        canonical = key if key.startswith("agent:") else f"agent:main:{key}"
        active = [r for r in self.runs.values() if r.session_key == canonical and not r.done.is_set()]
        if ev.params.run_id is not UNSET:
            active = [r for r in active if r.run_id == ev.params.run_id]
        for run in active:
            run.status = "aborted"
            run.ended_at = _runtime.wall_ms()
            run.done.set()
        s.respond(ev.request_id, {"ok": True, "aborted": bool(active), "runIds": [r.run_id for r in active]})

    # config (minimal: the full config layer is separate work) --------------------------

    def _config_state(self) -> dict[str, Any]:
        path = self.settings.paths.config_path
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {
                "path": str(path),
                "exists": False,
                "raw": None,
                "parsed": None,
                "valid": True,
                "hash": None,
                "issues": [],
                "warnings": [],
            }
        digest = hashlib.sha256(raw.encode()).hexdigest()
        try:
            parsed = pyjson5.decode(raw) if raw.strip() else {}
            issues: list[Any] = [{"path": i.path, "message": i.message} for i in validate_config(parsed)]
        except Exception as exc:  # noqa: BLE001
            parsed, issues = None, [{"path": "", "message": str(exc)}]
        return {
            "path": str(path),
            "exists": True,
            "raw": raw,
            "parsed": parsed,
            "valid": not issues,
            "hash": digest,
            "issues": issues,
            "warnings": [],
        }

    def applied_config(self) -> dict[str, Any]:
        """The config the gateway runs with (the last good one; may differ from the file)."""
        settings = self.reload_state.settings if self.reload_state is not None else self.settings
        return settings.config or {}

    def applied_config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.applied_config(), sort_keys=True).encode()).hexdigest()

    def m_config_schema(self, s: Session, ev: RequestReceived) -> None:
        s.respond(ev.request_id, config_json_schema())

    def m_config_schema_lookup(self, s: Session, ev: RequestReceived) -> None:
        found = schema_lookup(ev.params.path)
        if found is None:
            s.respond_error(ev.request_id, E.invalid_request("config schema path not found"))
        else:
            s.respond(ev.request_id, {"path": ev.params.path, "schema": found})

    def _secrets(self) -> set[str]:
        return {v for v in (self.secret.token, self.secret.password) if v}

    def m_config_get(self, s: Session, ev: RequestReceived) -> None:
        st = self._config_state()
        secrets = self._secrets()
        raw = st["raw"]
        if raw is not None:
            for value in secrets:
                raw = raw.replace(value, REDACTED)
        parsed = _redact(st["parsed"], secrets)
        s.respond(
            ev.request_id,
            {
                "path": st["path"],
                "includedPaths": [],
                "includeProvenance": [],
                "agentRosterIncludeOwned": False,
                "bindingsIncludeOwned": False,
                "exists": st["exists"],
                "raw": raw if st["valid"] else None,
                "parsed": parsed,
                "sourceConfig": parsed,
                "resolved": parsed,
                "valid": st["valid"],
                "runtimeConfig": _redact(self.applied_config(), secrets),
                "config": parsed,
                "hash": st["hash"],
                "issues": st["issues"],
                "warnings": st["warnings"],
                "legacyIssues": [],
                "configRevisionHash": st["hash"],
                "appliedConfigHash": self.applied_config_hash(),
            },
        )

    def _check_base_hash(self, st: dict[str, Any], base: Any) -> None:
        if not st["exists"]:
            return
        if not isinstance(base, str) or not base:
            raise E.RemoteProtocolError(E.invalid_request("config base hash required; re-run config.get and retry"), 0)
        if base != st["hash"]:
            raise E.RemoteProtocolError(
                E.invalid_request("config changed since last load; re-run config.get and retry"), 0
            )

    def _check_schema(self, value: Any) -> None:
        issues = validate_config(value)
        if issues:
            raise E.RemoteProtocolError(E.invalid_request("invalid config: " + "; ".join(str(i) for i in issues)), 0)
        # Security (design.md §5): a remote config write may not point the gateway at programs to run.
        before = ((self.applied_config().get("secrets") or {}).get("providers") or {}) if self.applied_config() else {}
        after = ((value.get("secrets") or {}).get("providers") or {}) if isinstance(value.get("secrets"), dict) else {}
        for alias, provider in after.items() if isinstance(after, dict) else ():
            if isinstance(provider, dict) and provider.get("source") == "exec":
                old = before.get(alias) if isinstance(before, dict) else None
                if not isinstance(old, dict) or (old.get("command"), old.get("args")) != (
                    provider.get("command"),
                    provider.get("args"),
                ):
                    raise E.RemoteProtocolError(
                        E.invalid_request(
                            f"config writes over RPC may not set executable paths (secrets.providers.{alias}.command); "
                            "edit the file on the gateway host instead"
                        ),
                        0,
                    )

    def _write_config(self, value: Any) -> dict[str, Any]:
        path = self.settings.paths.config_path
        text = json.dumps(value, indent=2) + "\n"
        try:
            if path.exists():
                atomic_write(path.with_name(path.name + ".bak"), path.read_bytes())
            atomic_write(path, text.encode())
        except OSError as exc:
            self.storage.failed("config", exc)
            raise E.RemoteProtocolError(
                E.unavailable(
                    f"config write failed: {describe_os_error(exc)}; retry when storage is writable",
                    retryable=True,
                ),
                0,
            ) from None
        self.storage.ok("config")
        digest = hashlib.sha256(text.encode()).hexdigest()
        self.broadcast("config.changed", {"path": str(path), "hash": digest, "ts": _runtime.wall_ms()})
        self.log.info("gateway/reload", f"config written by RPC: {path}")
        return {"ok": True, "path": str(path), "hash": digest, "config": _redact(value, self._secrets())}

    def _config_write(self, s: Session, ev: RequestReceived, *, patch: bool, apply: bool) -> None:
        st = self._config_state()
        try:
            self._check_base_hash(st, ev.params.base_hash if ev.params.base_hash is not UNSET else None)
            try:
                incoming = pyjson5.decode(ev.params.raw)
            except Exception as exc:  # noqa: BLE001
                raise E.RemoteProtocolError(E.invalid_request(f"invalid config: {exc}"), 0) from None
            if not isinstance(incoming, dict):
                raise E.RemoteProtocolError(E.invalid_request("invalid config: the root must be an object"), 0)
            if not patch:
                self._check_schema(incoming)
            if patch:
                if not st["valid"]:
                    issues = "; ".join(i["message"] for i in st["issues"])
                    raise E.RemoteProtocolError(
                        E.invalid_request(f"{issues}; fix (openclaw doctor) before patching"), 0
                    )
                current = st["parsed"] or {}
                merged = _merge_patch(current, incoming)
                if merged == current:
                    s.respond(
                        ev.request_id,
                        {
                            "ok": True,
                            "noop": True,
                            "changedPaths": [],
                            "path": st["path"],
                            "config": _redact(current, self._secrets()),
                        },
                    )
                    return
                self._check_schema(merged)
                result = self._write_config(merged)
                result["changedPaths"] = sorted(incoming)
            else:
                result = self._write_config(incoming)
        except E.RemoteProtocolError as exc:
            assert exc.error is not None
            s.respond_error(ev.request_id, exc.error)
            return
        if apply:
            result["restart"] = False
            result["sentinel"] = {"persisted": False, "payload": None}
        s.respond(ev.request_id, result)

    def m_config_set(self, s: Session, ev: RequestReceived) -> None:
        self._config_write(s, ev, patch=False, apply=False)

    def m_config_patch(self, s: Session, ev: RequestReceived) -> None:
        self._config_write(s, ev, patch=True, apply=True)

    def m_config_apply(self, s: Session, ev: RequestReceived) -> None:
        self._config_write(s, ev, patch=False, apply=True)
