"""``GatewayApp``: the application side of every connection, pure.

One object per gateway run. The host (``gateway_trio``'s shell, or the conformance simulator) owns
the sockets and the clock; it tells the app what happened — a client was admitted, a request
arrived, a connection ended, time passed — and drains what the app decided from :attr:`outbox`
(answers, broadcasts, closes, log lines, jobs to spawn). A request whose handler needs the outside
world becomes a :class:`Job`: the host performs each effect it yields and steps it with the result.

State owned here: the connection registry (who is admitted, with which credential, subscribed to
what), presence and ``stateVersion``, the health snapshot, heartbeats and queued system events, the
idempotency ledger, the run table, the tick schedule and the credential in force.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import msgspec
from msgspec import UNSET, Struct

from .. import errors as E
from ..agents import roster as R
from ..agents.lanes import Lanes
from ..auth import AuthRateLimiter, RateLimitPolicy, SharedSecret
from ..events import Principal, RequestReceived
from ..frames import ErrorShape, PresenceEntry, Snapshot
from ..idempotency import IdempotencyLedger
from ..ingress import parse_trusted_proxies
from ..methods import CATALOGUE
from ..origin import seed_origins
from ..server import ServerPolicy
from .effects import CloseConnection, Effect, Interrupt, LaneGranted, LogLine, Output, Publish, Reply, RunSettled, Spawn
from .presence import PresenceTable, Versions
from .router import LATER, Refused, Router
from .runs import RunTable

#: protocol.md §14 (health): the cached snapshot is refreshed when older than this.
HEALTH_REFRESH_S = 60.0
HEARTBEAT_EVERY_MS = 30 * 60_000
SYSTEM_EVENTS_KEPT = 50


class HostFacts(Struct, frozen=True, kw_only=True):
    """What the host is (read once at start): reported by ``status``, presence and hello-ok."""

    version: str
    boot_id: str
    pid: int = 0
    hostname: str = "localhost"
    platform: str = ""
    device_family: str = ""
    config_path: str = ""
    state_dir: str = ""
    log_path: str = ""
    #: The gateway's own Ed25519 identity (``gateway.identity.get``).
    identity: dict[str, str] = {}
    cpus: int = 1


class ConnView:
    """What the application knows of one admitted connection."""

    __slots__ = ("auth_secret", "conn_id", "principal", "subscriptions")

    def __init__(self, conn_id: str, principal: Principal, auth_secret: str | None) -> None:
        self.conn_id = conn_id
        self.principal = principal
        #: The shared secret this client proved (a rotation closes it, 4001).
        self.auth_secret = auth_secret
        self.subscriptions: set[str] = set()


class Ctx:
    """A handler's view of its call: who asked, what, and the time now (updated at every step)."""

    __slots__ = ("app", "conn", "method", "now", "request_id", "wall_ms")

    def __init__(self, app: GatewayApp, conn: ConnView | None, request_id: str, method: str, now: float, wall_ms: int) -> None:
        self.app = app
        self.conn = conn
        self.request_id = request_id
        self.method = method
        self.now = now
        self.wall_ms = wall_ms

    @property
    def principal(self) -> Principal:
        assert self.conn is not None
        return self.conn.principal

    def reply(self, payload: Any, *, final: bool = False) -> None:
        """An early answer (``final=False``: the two-stage ack); the final one is the return value."""
        assert self.conn is not None
        self.app.outbox.append(Reply(self.conn.conn_id, self.request_id, True, payload, final=final))

    def publish(self, event: str, payload: Any, **kw: Any) -> None:
        self.app.publish(event, payload, **kw)

    def log(self, level: str, subsystem: str, message: str) -> None:
        self.app.outbox.append(LogLine(level, subsystem, message))


class Job:
    """A running handler (or spawned task): a generator of effects, stepped by the host."""

    __slots__ = ("_gen", "ctx", "done", "pending")

    def __init__(self, ctx: Ctx, gen: Generator[Effect, Any, Any]) -> None:
        self.ctx = ctx
        self._gen = gen
        self.done = False
        #: The effect the job waits on (``None`` once finished).
        self.pending: Effect | None = None

    def step(self, value: Any = None, *, now: float, wall_ms: int, exc: BaseException | None = None) -> Effect | None:
        """Resume with ``value`` (or throw ``exc``); the next effect, or ``None`` when finished."""
        ctx = self.ctx
        ctx.now, ctx.wall_ms = now, wall_ms
        self.pending = None
        try:
            effect = self._gen.throw(exc) if exc is not None else self._gen.send(value)
        except StopIteration as stop:
            self._finish(stop.value)
            return None
        except Exception as failure:  # noqa: BLE001 - a handler's failure is answered, never raised
            self._fail(failure)
            return None
        self.pending = effect
        return effect

    def cancel(self) -> None:
        """The connection went away (or the gateway stops): run the handler's cleanup, answer nothing."""
        if not self.done:
            self.done = True
            self._gen.close()

    def _finish(self, result: Any) -> None:
        self.done = True
        self.ctx.app._answer(self.ctx, result)

    def _fail(self, failure: Exception) -> None:
        self.done = True
        self.ctx.app._answer_failure(self.ctx, failure)


class GatewayApp:
    """The application: registry, presence, health, runs, ticks, and the method router."""

    def __init__(
        self,
        *,
        router: Router,
        facts: HostFacts,
        policy: ServerPolicy,
        secret: SharedSecret,
        config: dict[str, Any] | None,
        now: float,
        wall_ms: int,
        verbose: bool = False,
        bind: str = "loopback",
    ) -> None:
        self.router = router
        self.bind = bind
        self.facts = facts
        # Routed names the published catalogue lacks (``config.plan``, …) are extras: admin-only.
        extra = policy.extra_methods | frozenset(m for m in router.methods if m not in CATALOGUE)
        self.policy = msgspec.structs.replace(policy, implemented_methods=router.methods, extra_methods=extra)
        self.secret = secret
        self.config: dict[str, Any] = config or {}
        self.verbose = verbose
        self.started = now
        self.outbox: list[Output] = []
        self.conns: dict[str, ConnView] = {}
        self.presence = PresenceTable()
        self.versions = Versions()
        self.ledger = IdempotencyLedger()
        self.runs = RunTable()
        self.heartbeats_enabled = True
        self.last_heartbeat: Any = None
        self.system_events: list[str] = []
        self.closing = False
        #: Where ``health.configReload`` comes from: an object with ``health() -> dict`` (the
        #: host's reload state; read, never written, by the app), or None when nothing is watched.
        self.reload_view: Any = None
        self.health_cache: dict[str, Any] | None = None
        self.health_raw: msgspec.Raw | None = None
        self.health_at = -math.inf
        self._tick_at = now + self.policy.tick_interval_ms / 1000
        #: Providers' API keys as the host resolved them (env substitutions, SecretRefs).
        self.provider_keys: dict[str, str | None] = {}
        self.roster = R.roster(self.config)
        self._chains: dict[tuple[Any, str | None], tuple[Any, ...]] = {}
        self._chains_of: tuple[Any, Any] = (None, None)
        self.lanes = Lanes(R.max_concurrent(self.config, facts.cpus))
        #: Inputs of runs a crash interrupted, by session key: the next turn carries them as context.
        self.interrupted_inputs: dict[str, list[str]] = {}
        #: Session store figures for health/status (the host refreshes them: count, recent rows).
        self.session_stats: dict[str, Any] = {"count": 0, "recent": []}
        #: Extension point for later families (channels, …): name → state.
        self.parts: dict[str, Any] = {}
        #: ``(bind, port)`` of the listener, for the allowlist a non-loopback bind is seeded with.

    # ------------------------------------------------------------------ time

    def uptime_ms(self, now: float) -> int:
        return int((now - self.started) * 1000)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is due next (the tick schedule), or ``None`` while closing."""
        return None if self.closing else self._tick_at

    def handle_timer(self, now: float, wall_ms: int) -> None:
        """``tick`` to everyone every tick interval; a health refresh (and event) every 60 s."""
        if self.closing or now < self._tick_at:
            return
        interval = self.policy.tick_interval_ms / 1000
        while self._tick_at <= now:
            self._tick_at += interval
        self.publish("tick", {"ts": wall_ms})
        if now - self.health_at >= HEALTH_REFRESH_S - 1:
            snap = self.refresh_health(now, wall_ms)
            self.publish("health", snap, state_version=self.versions.current)

    # ------------------------------------------------------------------ connections

    def connected(self, conn_id: str, principal: Principal, wall_ms: int) -> None:
        """A client was admitted (hello-ok sent): register it, add its presence row."""
        auth_secret = None
        if principal.auth_method == "token":
            auth_secret = self.secret.token
        elif principal.auth_method == "password":
            auth_secret = self.secret.password
        self.conns[conn_id] = ConnView(conn_id, principal, auth_secret)
        if principal.presence_tracked:
            c = principal.client
            self.presence.upsert(
                conn_id,
                PresenceEntry(
                    ts=wall_ms,
                    client_id=c.id,
                    host=c.display_name if c.display_name is not UNSET else UNSET,
                    ip=principal.client_ip,
                    version=c.version,
                    platform=c.platform,
                    device_family=c.device_family,
                    mode=c.mode,
                    reason="connect",
                    online_since=wall_ms,
                    device_id=principal.device_id or UNSET,
                    roles=[principal.role],
                    scopes=list(principal.scope_list),
                    instance_id=c.instance_id,
                ),
            )
            self.broadcast_presence(wall_ms)
        if self.verbose:
            self.log("debug", "gateway/ws", f"← connect {principal.client.id}/{principal.client.mode} conn={conn_id[:8]}")

    def disconnected(self, conn_id: str, wall_ms: int) -> None:
        """A connection ended: forget it; its presence row says ``disconnect``."""
        if self.conns.pop(conn_id, None) is None:
            return
        if self.presence.touch(conn_id, wall_ms, reason="disconnect"):
            self.broadcast_presence(wall_ms)

    def pong(self, conn_id: str, wall_ms: int) -> None:
        """A keepalive pong refreshes the client's presence row (no broadcast)."""
        self.presence.touch(conn_id, wall_ms)

    def rotate_secret(self, secret: SharedSecret) -> int:
        """Use ``secret`` from now on; close clients admitted with the old one (4001). Returns how many."""
        self.secret = secret
        current = {secret.token, secret.password} - {None}
        closed = 0
        for view in self.conns.values():
            if view.auth_secret is not None and view.auth_secret not in current:
                self.outbox.append(CloseConnection(view.conn_id, 4001, "gateway auth changed"))
                closed += 1
        return closed

    def model_chain(self, agent: Any, override: str | None = None) -> list[Any]:
        """:func:`roster.model_chain` for this config and these keys, kept until either changes
        (both are replaced whole, never edited): a turn does not resolve its models again."""
        if self._chains_of[0] is not self.config or self._chains_of[1] is not self.provider_keys:
            self._chains_of = (self.config, self.provider_keys)
            self._chains.clear()
        key = (agent, override)
        found = self._chains.get(key)
        if found is None:
            if len(self._chains) >= 256:  # overrides come from requests: bounded
                self._chains.clear()
            found = self._chains[key] = tuple(R.model_chain(agent, self.config, self.provider_keys, override=override))
        return list(found)

    def apply_config(
        self, config: dict[str, Any] | None, paths: set[str], provider_keys: dict[str, str | None] | None = None
    ) -> list[str]:
        """Hot-apply config paths that have a live consumer here; returns the ones applied.

        Agents and models are re-read from the config as a whole: the next run uses them.
        """
        self.config = config or {}
        if provider_keys is not None:
            self.provider_keys = provider_keys
        self.roster = R.roster(self.config)
        self.lanes.max_concurrent = R.max_concurrent(self.config, self.facts.cpus)
        done: list[str] = []
        if any(p.startswith(("agents", "models")) for p in paths):
            done.append("agents/models")
        access_keys = (
            "gateway.controlUi.allowedOrigins",
            "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
            "gateway.nodes.pairing",
        )
        if any(p.startswith(access_keys) for p in paths):
            self.set_access_policy(config)
            done.extend(k for k in access_keys if any(p.startswith(k) for p in paths))
        return done

    def set_access_policy(self, config: dict[str, Any] | None) -> tuple[str, ...]:
        """Who may connect from a browser (``gateway.controlUi`` origins, or the non-loopback seed)
        and whether local devices pair silently (``gateway.nodes.pairing.autoApproveLocal``).
        Returns the seeded origins (empty when none were seeded)."""
        origins, fallback, seeded = origin_policy_for(config, self.bind, self.policy.port)
        pairing = (_gateway_section(config).get("nodes") or {}).get("pairing") or {}
        self.policy = msgspec.structs.replace(
            self.policy,
            allowed_origins=origins,
            host_header_origin_fallback=fallback,
            auto_approve_local_pairing=pairing.get("autoApproveLocal") is not False if isinstance(pairing, dict) else True,
        )
        return origins if seeded else ()

    # ------------------------------------------------------------------ outputs

    def log(self, level: str, subsystem: str, message: str) -> None:
        self.outbox.append(LogLine(level, subsystem, message))

    def publish(
        self,
        event: str,
        payload: Any,
        *,
        state_version: Any = None,
        drop_if_slow: bool = False,
        to: frozenset[str] | None = None,
    ) -> None:
        self.outbox.append(Publish(event, payload, state_version, drop_if_slow, to))

    def subscribers(self, topic: str) -> frozenset[str]:
        return frozenset(v.conn_id for v in self.conns.values() if topic in v.subscriptions)

    def run_settled(self, run: Any) -> None:
        """Tell the host that ``run`` finished (its ``agent.wait`` callers wake)."""
        self.outbox.append(RunSettled(run.run_id))

    def release_lane(self, run_id: str) -> None:
        """A run left its lane (finished or gave up waiting): wake the runs it lets in."""
        for granted in self.lanes.release(run_id):
            self.outbox.append(LaneGranted(granted))

    def interrupt(self, run_id: str, reason: str = "abort") -> None:
        self.outbox.append(Interrupt(run_id, reason))

    def session_changed(self, record: Any, reason: str) -> None:
        """``sessions.changed`` to the connections subscribed with ``sessions.subscribe``."""
        if record is None:
            return
        stats = self.session_stats
        recent = [r for r in stats.get("recent", []) if r.get("key") != record.key]
        stats["recent"] = [{"key": record.key, "updatedAt": record.updated_at}, *recent][:5]
        to = self.subscribers("sessions")
        if to:
            self.publish(
                "sessions.changed",
                {"sessionKey": record.key, "reason": reason, "ts": record.updated_at},
                to=to,
            )

    def spawn(self, job: Job, name: str = "", key: str | None = None) -> None:
        self.outbox.append(Spawn(job, name, key))

    def take_outbox(self) -> list[Output]:
        out, self.outbox = self.outbox, []
        return out

    # ------------------------------------------------------------------ presence and health

    def self_row(self, wall_ms: int) -> PresenceEntry:
        f = self.facts
        ip = "127.0.0.1"
        return PresenceEntry(
            ts=wall_ms,
            host=f.hostname,
            ip=ip,
            version=f.version,
            platform=f.platform,
            device_family=f.device_family,
            mode="gateway",
            reason="self",
            instance_id=f.boot_id,
            text=f"Gateway: {f.hostname} ({ip}) · app {f.version} · mode gateway · reason self",
        )

    def presence_rows(self, wall_ms: int) -> list[PresenceEntry]:
        return self.presence.listing(wall_ms, self.self_row(wall_ms))

    def broadcast_presence(self, wall_ms: int) -> None:
        version = self.versions.bump_presence()
        self.publish("presence", {"presence": self.presence_rows(wall_ms)}, state_version=version, drop_if_slow=True)

    def snapshot(self, now: float, wall_ms: int) -> Snapshot:
        """hello-ok's snapshot (the core gates it by the client's scopes)."""
        return Snapshot(
            presence=self.presence_rows(wall_ms),
            health=self.health_cache or {},
            state_version=self.versions.current,
            uptime_ms=self.uptime_ms(now),
            suspension={"phase": "accepting"},
            session_defaults={
                "defaultAgentId": self.roster.default_id,
                "modelConfigured": any(a.primary for a in self.roster.agents),
                "mainKey": "main",
                "mainSessionKey": f"agent:{self.roster.default_id}:main",
                "scope": "per-sender",
            },
            config_path=self.facts.config_path,
            state_dir=self.facts.state_dir,
            auth_mode=self.secret.mode,
        )

    def refresh_health(self, now: float, wall_ms: int) -> dict[str, Any]:
        recent = [{**r, "age": max(0, wall_ms - r["updatedAt"])} for r in self.session_stats.get("recent", [])]
        sessions = {"path": f"{self.facts.state_dir}/agents/sessions.sqlite", "count": self.session_stats.get("count", 0), "recent": recent}
        snap = {
            "ok": True,
            "ts": wall_ms,
            "durationMs": 0,
            "configReload": self.reload_view.health() if self.reload_view is not None else {"hotReloadStatus": "disabled"},
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": HEARTBEAT_EVERY_MS // 1000 if self.heartbeats_enabled else 0,
            "defaultAgentId": self.roster.default_id,
            "agents": [
                {
                    "agentId": agent.id,
                    "isDefault": agent.id == self.roster.default_id,
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
                for agent in self.roster.agents
            ],
            "sessions": sessions,
        }
        self.health_cache = snap
        self.health_raw = None
        self.health_at = now
        self.versions.bump_health()
        return snap

    def queue_system_event(self, text: str) -> None:
        self.system_events.append(text)
        del self.system_events[:-SYSTEM_EVENTS_KEPT]

    # ------------------------------------------------------------------ lifecycle

    def begin_shutdown(self) -> None:
        """No more ticks; the host closes the connections."""
        self.closing = True

    # ------------------------------------------------------------------ requests

    def request(self, conn_id: str, ev: RequestReceived, now: float, wall_ms: int) -> Job | None:
        """Handle one authorized request. ``None`` if it finished at once; else a Job to step."""
        conn = self.conns.get(conn_id)
        ctx = Ctx(self, conn, ev.request_id, ev.method, now, wall_ms)
        route = self.router.get(ev.method)
        if route is None or conn is None:
            self._answer_failure(
                ctx, Refused(E.unavailable(f"{ev.method} is not implemented by this gateway", {"method": ev.method}))
            )
            return None
        try:
            result = route.handler(ctx, ev.params)
        except Exception as failure:  # noqa: BLE001 - §7.3 step 13: a thrown handler answers UNAVAILABLE
            self._answer_failure(ctx, failure)
            return None
        if isinstance(result, Generator):
            job = Job(ctx, result)
            return job if job.step(None, now=now, wall_ms=wall_ms) is not None else None
        self._answer(ctx, result)
        return None

    def _answer(self, ctx: Ctx, result: Any) -> None:
        if result is LATER or ctx.conn is None:
            return
        self.outbox.append(Reply(ctx.conn.conn_id, ctx.request_id, True, result))

    def _answer_failure(self, ctx: Ctx, failure: Exception) -> None:
        error: ErrorShape | None
        payload: Any = UNSET
        if isinstance(failure, Refused):
            error, payload = failure.error, failure.payload
        elif isinstance(failure, E.RemoteProtocolError):
            error = failure.error
        else:
            self.log("error", "gateway/ws", f"handler {ctx.method} failed: {failure!r}")
            error = E.unavailable(client_text(failure))
        if ctx.conn is None or error is None:
            return
        self.outbox.append(Reply(ctx.conn.conn_id, ctx.request_id, False, None if payload is UNSET else payload, error))


def client_text(exc: BaseException) -> str:
    """What a client is told about an unexpected failure: an OS error's reason without its path."""
    if isinstance(exc, OSError):
        return (exc.strerror or type(exc).__name__).lower()
    return str(exc) or type(exc).__name__


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
    """(allowed origins, host-header fallback, seeded?) for this runtime (runtime-cli.md §5.4): a
    non-loopback bind with no allowlist is seeded with its own origins, for this runtime only."""
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


def allow_real_ip_fallback(config: dict[str, Any] | None) -> bool:
    return _gateway_section(config).get("allowRealIpFallback") is True


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


__all__ = [
    "AuthRateLimiter",
    "ConnView",
    "Ctx",
    "GatewayApp",
    "HostFacts",
    "Job",
    "allow_real_ip_fallback",
    "allowed_origins",
    "origin_policy_for",
    "rate_limit_policy",
    "trusted_proxies",
]
