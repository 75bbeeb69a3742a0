"""The application host: the Trio side of :class:`gateway_core.app.GatewayApp`.

The pure app decides; this module carries its decisions out. It owns the live sessions (by
connection id), drains the app's outbox after every step (answers to sessions, broadcasts fanned out
through each session's core, closes, log lines, spawned jobs), performs the effects handlers yield
(file reads and atomic writes and log tails off the event loop with ``trio.to_thread``; sleeps and
run waits on Trio's clock; credential resolution), and fires the app's tick schedule.

Resource handling: a request's job runs in its session's nursery (cancelled when the connection
closes); spawned jobs (runs) run in the gateway's nursery and outlive the request that started
them. Error handling: an effect's ``OSError`` becomes :class:`EffectFailed` thrown into the job,
with the host path kept for the log only; a job never takes the gateway down.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
from collections.abc import Callable
from typing import Any

import trio

from gateway_core import Admission, RequestReceived, ServerPolicy, SharedSecret
from gateway_core import errors as E
from gateway_core.agents.effects import ModelNext, ModelOpen, RunAborted, RunDeadline, StoreCall
from gateway_core.app import (
    CloseConnection,
    EffectFailed,
    GatewayApp,
    HostFacts,
    Interrupt,
    Job,
    LaneGranted,
    LogLine,
    Publish,
    Reply,
    RunSettled,
    Spawn,
    allow_real_ip_fallback,
    default_router,
    origin_policy_for,
    rate_limit_policy,
    trusted_proxies,
)
from gateway_core.broadcast import EncodedEvent
from gateway_core.channels.pipeline import is_channel_run
from gateway_core.events import HandshakeFailed, Principal

from . import _runtime
from .agent_host import AgentHost, raw_stream_path, resolve_provider_keys
from .channels import ChannelManager
from .effects import Effects
from .fanwriter import PARALLEL_MIN, FanWriter
from .routehost import RouteHost
from .runtime import FileLog, GatewaySettings
from .scheduler import DeadlineScheduler
from .session import Session
from .state import GatewayIdentity, PersistentServices, StorageHealth
from .turns import Watches
from .wslog import WsLog

VERSION = "2026.9.6-py.0.1.0"


def _deadline(effect: Any) -> float:
    """The deadline an awaited effect runs under: a model call's ``until`` (the run's), else none."""
    until = getattr(effect, "until", None) if isinstance(effect, ModelOpen | ModelNext) else None
    return until if until is not None else math.inf


class Gateway(RouteHost):
    """One server run: the app, its sessions, and the shell around them."""

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
        self.restart_count = restart_count
        #: The WebSocket traffic log (``--ws-log``/``--verbose``, runtime-cli.md §9.3).
        self.ws_log = WsLog(
            settings.ws_log, verbose=settings.verbose, emit=lambda level, line: log.log(level, "gateway/ws", line)
        )
        secret = SharedSecret(
            mode=settings.auth_mode,  # type: ignore[arg-type]
            token=settings.token,
            password=settings.password,
        )
        self.storage = StorageHealth(lambda level, line: getattr(log, level)("storage", line))
        self.services = PersistentServices(
            settings.paths.state_dir,
            lambda: self.app.secret,
            rate_limit=rate_limit_policy(settings.config),
            storage=self.storage,
        )
        identity = GatewayIdentity(settings.paths.state_dir)
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
        self.allow_real_ip_fallback = allow_real_ip_fallback(settings.config)
        host = socket.gethostname()
        self.app = GatewayApp(
            router=default_router(),
            facts=HostFacts(
                version=VERSION,
                boot_id=self.boot_id,
                pid=os.getpid(),
                hostname=host,
                platform=f"{platform.system().lower()} {platform.release()}",
                device_family=platform.system(),
                config_path=str(settings.paths.config_path),
                state_dir=str(settings.paths.state_dir),
                log_path=str(log.path),
                identity=identity.as_payload(),
                cpus=os.cpu_count() or 1,
            ),
            policy=ServerPolicy(
                server_version=VERSION,
                boot_id=self.boot_id,
                auto_tick=False,
                handshake_timeout_ms=int(os.environ.get("OPENCLAW_HANDSHAKE_TIMEOUT_MS") or 15_000),
                allowed_origins=origins,
                host_header_origin_fallback=fallback,
                port=self.port,
            ),
            secret=secret,
            config=settings.config,
            now=_runtime.now(),
            wall_ms=_runtime.wall_ms(),
            verbose=settings.verbose,
            bind=settings.bind,
        )
        self.app.reload_view = reload_state
        self.app.parts["devices"] = self.services  # device.pair.* settle the handshake's pairing requests
        self.app.set_access_policy(settings.config)  # (the seeded origins were logged above)
        self.app.provider_keys = resolve_provider_keys(settings.config)
        self.agents = AgentHost(settings.paths.state_dir, raw_stream=raw_stream_path(settings.paths.state_dir))
        #: Chat channels: accounts, their durable queues and outbox (gateway_trio.channels).
        self.channels = ChannelManager(self)
        self.sessions: dict[str, Session] = {}
        self.scheduler = DeadlineScheduler()
        self.effects = Effects(self)
        #: Runs that HTTP routes started and watch (their events and result).
        self.watches = Watches()
        #: Writes half of a large fan-out from a helper thread (os.write releases the GIL).
        self.fan_writer = FanWriter()
        self.agents.gate = self.watches.room  # a route behind on a run's text holds its upstream
        self.agents.room_chars = self.watches.room_chars
        #: Answers to methods called over HTTP, by their transient connection id.
        self.reply_sinks: dict[str, Callable[[Reply], None]] = {}
        self._drained: trio.Event | None = None
        self._ticker_scope = trio.CancelScope()
        self._jobs: trio.Nursery | None = None
        #: Spawned jobs by key (run id) → the cancel scope of the effect each one waits on.
        self._keyed: dict[str, Job] = {}
        self._claims: dict[str, Job | None] = {}
        #: Runs a route streams whose job, when spawned, folds its quick store writes into the
        #: turn's commit (``_drive_folding``).
        self._folding: set[str] = set()
        self._waiting: dict[int, trio.CancelScope] = {}
        self._interrupted: set[int] = set()

    # ------------------------------------------------------------------ what sessions and probes read

    @property
    def policy(self) -> ServerPolicy:
        return self.app.policy

    @property
    def closing(self) -> bool:
        return self.app.closing

    @property
    def uptime_ms(self) -> int:
        return self.app.uptime_ms(_runtime.now())

    @property
    def secret(self) -> SharedSecret:
        return self.app.secret

    def snapshot(self) -> Any:
        return self.app.snapshot(_runtime.now(), _runtime.wall_ms())

    def refresh_health(self) -> dict[str, Any]:
        return self.app.refresh_health(_runtime.now(), _runtime.wall_ms())

    # ------------------------------------------------------------------ registry

    def admitted(self, session: Session, p: Principal) -> None:
        self.sessions[session.conn_id] = session
        self._release_preauth(session)
        self.app.connected(session.conn_id, p, _runtime.wall_ms())
        self.flush()

    def unregister(self, session: Session) -> None:
        self._release_preauth(session)
        if self.sessions.pop(session.conn_id, None) is None:
            return
        self.app.disconnected(session.conn_id, _runtime.wall_ms())
        self.flush()

    def touch_presence(self, session: Session) -> None:
        self.app.pong(session.conn_id, _runtime.wall_ms())

    def _release_preauth(self, session: Session) -> None:
        """An admitted (or closed) session no longer counts toward its IP's pre-auth budget."""
        slot, session.socket_slot = session.socket_slot, None
        if slot is not None:
            slot.admitted()

    def log_handshake_failure(self, session: Session, event: HandshakeFailed) -> None:
        code = event.error.code if event.error is not None else "-"
        details = event.error.details if event.error is not None and isinstance(event.error.details, dict) else {}
        if details.get("code") == "PAIRING_REQUIRED" and details.get("requestId"):
            # Operators with operator.pairing (a paired Control UI) see the request at once.
            self.broadcast(
                "device.pair.requested",
                {
                    "requestId": details["requestId"],
                    "deviceId": details.get("deviceId"),
                    "role": details.get("requestedRole"),
                    "scopes": details.get("requestedScopes") or [],
                    "reason": details.get("reason"),
                    "remoteIp": session.peer.client_ip,
                    "ts": _runtime.wall_ms(),
                },
                drop_if_slow=True,
            )
        self.log.warn(
            "gateway/ws",
            f"handshake refused conn={session.conn_id[:8]} ip={session.peer.client_ip} "
            f"close={event.close_code} code={code} reason={event.close_reason!r}",
        )

    # ------------------------------------------------------------------ config and credentials

    def apply_hot(
        self, paths: set[str], config: dict[str, Any] | None, *, provider_keys: dict[str, str | None] | None = None
    ) -> list[str]:
        """Apply hot-class config paths that have a live consumer; returns the ones applied.
        ``provider_keys`` are the config's resolved provider keys (the reloader resolves them in a
        worker thread; resolved here only when not given)."""
        done: list[str] = []
        if any(p.startswith("gateway.auth.rateLimit") for p in paths):
            self.services.rate_limiter.policy = rate_limit_policy(config)  # counters are kept
            done.append("gateway.auth.rateLimit")
        keys = provider_keys if provider_keys is not None else resolve_provider_keys(config)
        done += self.app.apply_config(config, paths, keys)
        proxy_keys = ("gateway.trustedProxies", "gateway.allowRealIpFallback")
        if any(p.startswith(proxy_keys) for p in paths):
            self.trusted_proxies = trusted_proxies(config)
            self.allow_real_ip_fallback = allow_real_ip_fallback(config)
            done.extend(k for k in proxy_keys if any(p.startswith(k) for p in paths))
        if any(p.startswith(("channels", "bindings", "commands", "session")) for p in paths):
            self.channels.config_changed(config)  # access settings apply live; connection settings restart the account
            done.append("channels")
        return done

    def rotate_secret(self, secret: SharedSecret) -> int:
        """Use ``secret`` from now on; close clients admitted with the old one (4001). Returns how many."""
        closed = self.app.rotate_secret(secret)
        self.flush()
        return closed

    # ------------------------------------------------------------------ requests and the outbox

    def dispatch(self, session: Session, ev: RequestReceived) -> None:
        session.request_started(ev.request_id, ev.method)
        self.channels.before_request(ev.method)
        job = self.app.request(session.conn_id, ev, _runtime.now(), _runtime.wall_ms())
        self.flush()
        if job is not None:
            session.spawn(self._drive_request, session, job, request_id=ev.request_id)

    def flush(self) -> None:
        """Carry out everything the app queued, in order."""
        app = self.app
        while app.outbox:
            for output in app.take_outbox():
                if isinstance(output, Reply):
                    session = self.sessions.get(output.conn_id)
                    if session is None:
                        sink = self.reply_sinks.get(output.conn_id)
                        if sink is not None:  # a method called over HTTP (the admin RPC)
                            sink(output)
                        continue
                    if output.ok:
                        session.respond(output.request_id, output.payload, final=output.final)
                    else:
                        session.respond_error(output.request_id, output.error, payload=output.payload, final=output.final)
                elif isinstance(output, Publish):
                    self._fan_out(output)
                    if self.watches and self.watches.wants(output.event, output.payload):
                        self._durable_before_output()
                        self.watches.published(output.event, output.payload)
                elif isinstance(output, LogLine):
                    getattr(self.log, output.level, self.log.info)(output.subsystem, output.message)
                elif isinstance(output, CloseConnection):
                    session = self.sessions.get(output.conn_id)
                    if session is not None:
                        session.close(output.code, output.reason)
                elif isinstance(output, Spawn):
                    if output.key is not None:
                        self._keyed[output.key] = output.job
                    self._spawn(output.job, output.key)
                elif isinstance(output, RunSettled):
                    self._keyed.pop(output.run_id, None)
                    self.effects.run_settled(output.run_id)
                    if self.watches:
                        run = app.runs.get(output.run_id)
                        self.watches.settled(output.run_id, run.result if run is not None else None)
                elif isinstance(output, LaneGranted):
                    self.agents.lane_granted(output.run_id)
                elif isinstance(output, Interrupt):
                    job = self._keyed.get(output.key)
                    if job is not None:
                        self._interrupted.add(id(job))
                        scope = self._waiting.get(id(job))
                        if scope is not None:
                            scope.cancel()
                elif self.channels.handles_output(output):
                    self.channels.output(output)

    def _fan_out(self, output: Publish) -> None:
        """One event to its audience: the payload is encoded once, each client's frame differs only
        in its ``seq`` (the core gates by scope and handles back-pressure)."""
        targets = list(self.sessions.values()) if output.to is None else [self.sessions[c] for c in output.to if c in self.sessions]
        if not targets:
            return
        self._durable_before_output()
        ev = EncodedEvent(output.event, output.payload, state_version=output.state_version, drop_if_slow=output.drop_if_slow)
        now = _runtime.now()
        if len(targets) < PARALLEL_MIN:
            for session in targets:
                session.publish_encoded(ev, now)
            return
        staged: list[tuple[Session, bytes]] = []  # gate, seq and frame for all, then the writes at once
        for session in targets:
            data = session.publish_staged(ev, now)
            if data is not None:
                staged.append((session, data))
        sent = self.fan_writer.write_all([(session.transport, data) for session, data in staged])
        for (session, data), n in zip(staged, sent, strict=True):
            session.written(data, n)

    def _durable_before_output(self) -> None:
        """What a client is about to see implies the writes before it are on disk: the session
        store's deferred writes (a new session's row, a run begun) commit now if they still wait
        (they wait for the turn's own commit otherwise, so a quick HTTP turn is one commit)."""
        store = self.agents.store
        if store is not None and store.deferred:
            store.commit_deferred()

    def broadcast(self, event: str, payload: Any, *, state_version: Any = None, drop_if_slow: bool = False) -> None:
        self.app.publish(event, payload, state_version=state_version, drop_if_slow=drop_if_slow)
        self.flush()

    # ------------------------------------------------------------------ work HTTP routes start

    def _spawn(self, job: Job, key: str | None = None) -> None:
        if self._jobs is None:
            job.cancel()
            return
        job.step(None, now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.flush()
        if job.pending is not None:
            if key is not None and key in self._claims:  # the route that started it drives it
                self._claims[key] = job
            elif key is not None and key in self._folding:
                self._folding.discard(key)
                self._jobs.start_soon(self._drive_folding, job)
            else:
                self._jobs.start_soon(self._drive, job)

    async def _drive_folding(self, job: Job) -> None:
        """:meth:`_drive` with this task in the store's ``fold_tasks``: the run's new session row
        and run begun wait for the turn's own commit (or DEFER_S, or the first output a client is
        about to see) instead of a commit of their own (a streamed answer: one commit, not two)."""
        with self.folding_writes():
            await self._drive(job)

    async def _drive_request(self, session: Session, job: Job) -> None:
        if session.close_if_slow():  # its answers would only be dropped: do not even produce them
            job.cancel()
            return
        await self._drive(job)

    async def _drive(self, job: Job) -> None:
        """Perform ``job``'s effects one by one until it is done (or cancelled with its scope).

        Awaited effects run in a cancel scope (one per run of effects with the same deadline): an
        :class:`Interrupt` (``chat.abort``) cancels it and throws ``RunAborted`` into the job; a run
        deadline (``until``) throws ``RunDeadline``.
        """
        owner = id(job)
        later = False  # the pending effect was offered to ``effects.now`` already: it must be awaited
        try:
            while job.pending is not None:
                # One cancel scope for the awaited effects up to the next interrupt or change of
                # deadline (a scope per awaited effect was a good part of a quick turn's cost). A
                # new deadline gets a new scope: one that fired after the last wait had ended must
                # not cancel an effect it does not bound (the turn's own write).
                with trio.CancelScope(deadline=_deadline(job.pending)) as scope:
                    self._waiting[owner] = scope
                    while job.pending is not None:
                        effect = job.pending
                        value: Any = None
                        exc: BaseException | None = None
                        if not later:
                            if owner not in self._interrupted:  # answered at once when no waiting is needed
                                try:
                                    value = self.effects.now(effect, owner)
                                except (EffectFailed, Exception) as failure:  # noqa: BLE001 - thrown back into the job
                                    value, exc = None, failure
                                if value is not _runtime.LATER:
                                    job.step(value, now=_runtime.now(), wall_ms=_runtime.wall_ms(), exc=exc)
                                    continue
                            later = True
                        if _deadline(effect) != scope.deadline:
                            break
                        later = False
                        if owner in self._interrupted:
                            scope.cancel()
                        self._flush_unless_commit_first(effect)  # what the steps queued goes out before any wait
                        value = None
                        try:
                            value = await self.effects.perform(effect, owner)
                        except (EffectFailed, Exception) as failure:  # noqa: BLE001 - thrown back into the job
                            exc = failure
                        job.step(value, now=_runtime.now(), wall_ms=_runtime.wall_ms(), exc=exc)
                        self._flush_unless_commit_first(job.pending)
                self._waiting.pop(owner, None)
                if scope.cancelled_caught:
                    stop = RunAborted() if owner in self._interrupted else RunDeadline()
                    self._interrupted.discard(owner)
                    later = False
                    await self.agents.close_owned(owner)  # the upstream sees its request closed now
                    job.step(None, now=_runtime.now(), wall_ms=_runtime.wall_ms(), exc=stop)
                    self._flush_unless_commit_first(job.pending)
            self.flush()
        finally:
            self._waiting.pop(owner, None)
            self._interrupted.discard(owner)
            job.cancel()
            await self.agents.close_owned(owner)

    def _flush_unless_commit_first(self, effect: Any) -> None:
        """Carry out what the steps queued, unless ``effect`` is the turn's own write and it
        commits on the loop at once: then it goes first, and what was queued (the text a quick
        stream read in one go) needs no commit of its own before it (``_durable_before_output``):
        one commit per turn, not two, and nothing of it is seen earlier either way."""
        if isinstance(effect, StoreCall) and effect.method == "append_turn":
            store = self.agents.store
            if store is not None and store.deferred and store.inline_now:
                return
        self.flush()

    # ------------------------------------------------------------------ schedule and lifecycle

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the shell's own tasks: the core deadline scheduler, the tick schedule, spawned jobs
        (runs) and the channels. Started before the listeners; ends when its nursery is cancelled.

        The stores that exist open and recover first (health and the next turn read what the
        session store's recovery finds; the channel store opens too when a channel is configured). A
        store that does not exist yet is neither created nor loaded (nor sqlite3 imported) until its
        first need; a call made before it is open waits for it, nothing is refused or dropped.
        """
        try:
            async with trio.open_nursery() as jobs:
                self._jobs = jobs
                await jobs.start(self._open_sessions)
                jobs.start_soon(self.scheduler.run)
                jobs.start_soon(self._ticker)
                await jobs.start(self.channels.run, self.settings.paths.state_dir)
                task_status.started()
        finally:
            self.fan_writer.close()
            with trio.CancelScope(shield=True):
                await self.channels.aclose()
                await self.agents.aclose()

    async def _open_sessions(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the session store and recover: now if it exists (a failure stops the start, as
        ever), else at its first need. Callers waiting for it go on once the recovery is done."""
        exists = await trio.to_thread.run_sync(self.agents.store_exists)
        if not exists:
            task_status.started()
            await self.agents.wanted.wait()
        try:
            await self._recover(await self.agents.open())
        except Exception as exc:
            if exists:
                raise
            self.log.error("agents", f"session store could not be opened: {exc}")  # its callers get "not open"
        finally:
            self.agents.opened.set()
        if exists:
            task_status.started()

    async def _recover(self, store: Any) -> None:
        """At start: runs a crash interrupted are marked so; the store's figures feed health."""

        def work() -> tuple[list[Any], int, list[Any]]:
            interrupted = store.interrupted_runs()
            now_ms = _runtime.wall_ms()
            for run in interrupted:
                store.end_run(run.run_id, "interrupted", now_ms)
            return interrupted, store.count(), store.recent(5)

        interrupted, count, recent = await trio.to_thread.run_sync(work)
        self.app.session_stats = {"count": count, "recent": [{"key": r.key, "updatedAt": r.updated_at} for r in recent]}
        for run in interrupted:
            if is_channel_run(run.run_id):
                continue  # the channel ingress queue replays these turns itself (exactly once)
            if run.input:
                self.app.interrupted_inputs.setdefault(run.session_key, []).append(run.input)
            self.log.warn(
                "agents", f"run {run.run_id} in {run.session_key} was interrupted; its input goes to the next turn"
            )

    async def _ticker(self) -> None:
        """The app's tick schedule: ``tick`` broadcasts and health refreshes."""
        with self._ticker_scope:
            while True:
                due = self.app.next_deadline()
                if due is None:
                    return
                await trio.sleep_until(due)
                self.app.handle_timer(_runtime.now(), _runtime.wall_ms())
                self.flush()

    def close_admission(self) -> None:
        """Stop taking work: new sockets get 503, new requests "unavailable during gateway restart"
        (runtime-cli.md §8.2 step 1); requests already in flight go on."""
        self.app.begin_shutdown()
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


__all__ = ["VERSION", "Gateway"]
