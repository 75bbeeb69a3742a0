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

import os
import platform
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from gateway_core import Admission, RequestReceived, ServerPolicy, SharedSecret
from gateway_core.agents.effects import ModelNext, ModelOpen, RunAborted, RunDeadline
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
    ReadFile,
    Reply,
    ResolveSecrets,
    RunSettled,
    Sleep,
    Spawn,
    TailLog,
    WaitRun,
    WriteFile,
    allowed_origins,
    default_router,
    rate_limit_policy,
)
from gateway_core.channels.pipeline import is_channel_run
from gateway_core.events import HandshakeFailed, Principal

from . import _runtime
from .agent_host import AgentHost, resolve_provider_keys
from .channels import ChannelManager
from .filelog import FileLog, tail
from .session import DeadlineScheduler, Session
from .settings import GatewaySettings
from .state import GatewayIdentity, PersistentServices, atomic_write

VERSION = "2026.9.6-py.0.1.0"


def raw_stream_path(state_dir: Path) -> Path | None:
    """``--raw-stream`` (``OPENCLAW_RAW_STREAM=1``): where model stream events are appended as JSONL."""
    if os.environ.get("OPENCLAW_RAW_STREAM") not in ("1", "true", "yes"):
        return None
    custom = os.environ.get("OPENCLAW_RAW_STREAM_PATH")
    return Path(custom) if custom else state_dir / "logs" / "raw-stream.jsonl"


def _read_optional(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _write(path: str, data: bytes, backup: bool, mode: int) -> None:
    target = Path(path)
    if backup and target.exists():
        atomic_write(target.with_name(target.name + ".bak"), target.read_bytes())
    atomic_write(target, data, mode)


def _failure(kind: str, exc: OSError) -> EffectFailed:
    """An OSError as the wire may see it: the reason in words, never the host path."""
    return EffectFailed(kind, exc.strerror or type(exc).__name__, str(exc))


class Gateway:
    """One server run: the app, its sessions, and the shell around them."""

    def __init__(
        self, settings: GatewaySettings, log: FileLog, *, restart_count: int = 0, reload_state: Any = None
    ) -> None:
        self.settings = settings
        self.reload_state = reload_state
        self.log = log
        self.restart_count = restart_count
        secret = SharedSecret(
            mode=settings.auth_mode,  # type: ignore[arg-type]
            token=settings.token,
            password=settings.password,
        )
        self.services = PersistentServices(
            settings.paths.state_dir, lambda: self.app.secret, rate_limit=rate_limit_policy(settings.config)
        )
        identity = GatewayIdentity(settings.paths.state_dir)
        self.boot_id = _runtime.new_uuid()
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
                allowed_origins=allowed_origins(settings.config),
            ),
            secret=secret,
            config=settings.config,
            now=_runtime.now(),
            wall_ms=_runtime.wall_ms(),
            verbose=settings.verbose,
        )
        self.app.reload_view = reload_state
        self.app.provider_keys = resolve_provider_keys(settings.config)
        self.agents = AgentHost(settings.paths.state_dir, raw_stream=raw_stream_path(settings.paths.state_dir))
        #: Chat channels: accounts, their durable queues and outbox (gateway_trio.channels).
        self.channels = ChannelManager(self)
        self.sessions: dict[str, Session] = {}
        self.preauth_by_ip: dict[str, int] = {}
        self.scheduler = DeadlineScheduler()
        self._ticker_scope = trio.CancelScope()
        self._jobs: trio.Nursery | None = None
        self._run_events: dict[str, trio.Event] = {}
        #: Spawned jobs by key (run id) → the cancel scope of the effect each one waits on.
        self._keyed: dict[str, Job] = {}
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

    def claim_preauth(self, ip: str, limit: int) -> bool:
        """Count one unauthenticated socket for ``ip``; False when the cap is reached."""
        n = self.preauth_by_ip.get(ip, 0)
        if n >= limit:
            return False
        self.preauth_by_ip[ip] = n + 1
        return True

    def _release_preauth(self, session: Session) -> None:
        if session.preauth_counted:
            session.preauth_counted = False
            ip = session.peer.client_ip
            n = self.preauth_by_ip.get(ip, 1) - 1
            if n <= 0:
                self.preauth_by_ip.pop(ip, None)
            else:
                self.preauth_by_ip[ip] = n

    def log_handshake_failure(self, session: Session, event: HandshakeFailed) -> None:
        code = event.error.code if event.error is not None else "-"
        self.log.warn(
            "gateway/ws",
            f"handshake refused conn={session.conn_id[:8]} ip={session.peer.client_ip} "
            f"close={event.close_code} code={code} reason={event.close_reason!r}",
        )

    # ------------------------------------------------------------------ config and credentials

    def apply_hot(self, paths: set[str], config: dict[str, Any] | None) -> list[str]:
        """Apply hot-class config paths that have a live consumer; returns the ones applied."""
        done: list[str] = []
        if any(p.startswith("gateway.auth.rateLimit") for p in paths):
            self.services.rate_limiter.policy = rate_limit_policy(config)  # counters are kept
            done.append("gateway.auth.rateLimit")
        done += self.app.apply_config(config, paths, resolve_provider_keys(config))
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
        job = self.app.request(session.conn_id, ev, _runtime.now(), _runtime.wall_ms())
        self.flush()
        if job is not None:
            session.spawn(self._drive, job)

    def flush(self) -> None:
        """Carry out everything the app queued, in order."""
        app = self.app
        while app.outbox:
            for output in app.take_outbox():
                if isinstance(output, Reply):
                    session = self.sessions.get(output.conn_id)
                    if session is None:
                        continue
                    if output.ok:
                        session.respond(output.request_id, output.payload, final=output.final)
                    else:
                        session.respond_error(output.request_id, output.error, payload=output.payload, final=output.final)
                elif isinstance(output, Publish):
                    self._fan_out(output)
                elif isinstance(output, LogLine):
                    getattr(self.log, output.level, self.log.info)(output.subsystem, output.message)
                elif isinstance(output, CloseConnection):
                    session = self.sessions.get(output.conn_id)
                    if session is not None:
                        session.close(output.code, output.reason)
                elif isinstance(output, Spawn):
                    if output.key is not None:
                        self._keyed[output.key] = output.job
                    self._spawn(output.job)
                elif isinstance(output, RunSettled):
                    self._keyed.pop(output.run_id, None)
                    event = self._run_events.pop(output.run_id, None)
                    if event is not None:
                        event.set()
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
        targets = self.sessions.values() if output.to is None else [self.sessions[c] for c in output.to if c in self.sessions]
        for session in list(targets):
            session.publish(output.event, output.payload, state_version=output.state_version, drop_if_slow=output.drop_if_slow)

    def broadcast(self, event: str, payload: Any, *, state_version: Any = None, drop_if_slow: bool = False) -> None:
        self.app.publish(event, payload, state_version=state_version, drop_if_slow=drop_if_slow)
        self.flush()

    def _spawn(self, job: Job) -> None:
        if self._jobs is None:
            job.cancel()
            return
        job.step(None, now=_runtime.now(), wall_ms=_runtime.wall_ms())
        self.flush()
        if job.pending is not None:
            self._jobs.start_soon(self._drive, job)

    async def _drive(self, job: Job) -> None:
        """Perform ``job``'s effects one by one until it is done (or cancelled with its scope).

        Each effect runs in its own cancel scope: an :class:`Interrupt` (``chat.abort``) cancels it
        and throws ``RunAborted`` into the job; a run deadline (``until``) throws ``RunDeadline``.
        """
        owner = id(job)
        try:
            while job.pending is not None:
                effect = job.pending
                value: Any = None
                exc: BaseException | None = None
                until = getattr(effect, "until", None) if isinstance(effect, ModelOpen | ModelNext) else None
                with trio.CancelScope(deadline=until if until is not None else float("inf")) as scope:
                    self._waiting[owner] = scope
                    if owner in self._interrupted:
                        scope.cancel()
                    try:
                        value = await self._perform(effect, owner)
                    except (EffectFailed, Exception) as failure:  # noqa: BLE001 - thrown back into the job
                        exc = failure
                self._waiting.pop(owner, None)
                if scope.cancelled_caught:
                    exc = RunAborted() if owner in self._interrupted else RunDeadline()
                    self._interrupted.discard(owner)
                job.step(value, now=_runtime.now(), wall_ms=_runtime.wall_ms(), exc=exc)
                self.flush()
        finally:
            self._waiting.pop(owner, None)
            self._interrupted.discard(owner)
            job.cancel()
            await self.agents.close_owned(owner)

    async def _perform(self, effect: Any, owner: int) -> Any:
        if self.agents.handles(effect):
            return await self.agents.perform(effect, owner)
        if self.channels.handles(effect):
            return await self.channels.perform(effect)
        if isinstance(effect, Sleep):
            await trio.sleep(effect.seconds)
            return None
        if isinstance(effect, WaitRun):
            event = self._run_events.setdefault(effect.run_id, trio.Event())
            with trio.move_on_after(effect.timeout_s):
                await event.wait()
            return event.is_set()
        if isinstance(effect, ReadFile):
            try:
                return await trio.to_thread.run_sync(_read_optional, effect.path)
            except OSError as exc:
                raise _failure("storage", exc) from None
        if isinstance(effect, WriteFile):
            try:
                return await trio.to_thread.run_sync(_write, effect.path, effect.data, effect.backup, effect.mode)
            except OSError as exc:
                raise _failure("storage", exc) from None
        if isinstance(effect, TailLog):
            path = self.log.path
            try:
                return await trio.to_thread.run_sync(
                    lambda: tail(path, cursor=effect.cursor, limit=effect.limit, max_bytes=effect.max_bytes)
                )
            except OSError as exc:
                raise _failure("io", exc) from None
        if isinstance(effect, ResolveSecrets):
            return self._resolve_secrets()
        raise EffectFailed("unsupported", f"{type(effect).__name__} is not supported by this host")

    def _resolve_secrets(self) -> SharedSecret | None:
        resolver: Callable[[], GatewaySettings] | None = (
            self.reload_state.resolve_again if self.reload_state is not None else None
        )
        if resolver is None:
            return None
        try:
            new = resolver()
        except Exception as exc:  # noqa: BLE001 - any resolution failure keeps the old credential
            raise EffectFailed("secrets", str(getattr(exc, "message", exc))) from None
        return SharedSecret(mode=new.auth_mode, token=new.token, password=new.password)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ schedule and lifecycle

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the shell's own tasks: the core deadline scheduler, the tick schedule and spawned
        jobs (runs). Started before the listeners; ends when its nursery is cancelled."""
        store = await self.agents.open()
        await self._recover(store)
        await self.channels.open(self.settings.paths.state_dir)
        try:
            async with trio.open_nursery() as jobs:
                self._jobs = jobs
                jobs.start_soon(self.scheduler.run)
                jobs.start_soon(self._ticker)
                await jobs.start(self.channels.run)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self.channels.aclose()
                await self.agents.aclose()

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

    def begin_shutdown(self, restart_expected_ms: int | None) -> None:
        """Close admission and tell every client (``shutdown`` event, then close 1012)."""
        self.app.begin_shutdown()
        self._ticker_scope.cancel()
        self.services.phase = Admission.RESTARTING if restart_expected_ms is not None else Admission.ACCEPTING
        for session in list(self.sessions.values()):
            session.begin_shutdown(restart_expected_ms)


__all__ = ["VERSION", "Gateway"]
