"""Core mode: transcripts replayed against gateway_core in memory, on a virtual clock.

No sockets, no event loop, no sleeping. :class:`SimHost` hosts the gateway's real application
layer (:class:`gateway_core.app.GatewayApp` with the real method handlers) around many
:class:`ServerConnection` objects, and plays the part the Trio shell plays in the live gateway:
it carries the core's actions to an inbox per connection, tells the app what happened, fans out
its broadcasts, and performs the effects its handlers yield — against an in-memory file system,
an in-memory log and a virtual clock — instead of against the disk and the network.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway_core import (
    Admission,
    CloseTransport,
    ConnectionTerminated,
    HandshakeAuthenticated,
    MemoryServices,
    PairingRequested,
    PeerInfo,
    PongReceived,
    RequestReceived,
    SendPing,
    SendText,
    ServerConnection,
    ServerPolicy,
    SharedSecret,
    Terminate,
)
from gateway_core.agents.effects import (
    AwaitLane,
    ModelClose,
    ModelFailed,
    ModelNext,
    ModelOpen,
    RunAborted,
    StoreCall,
    Streamed,
    TurnWritten,
)
from gateway_core.agents.store import MemorySessionStore
from gateway_core.app import (
    CloseConnection,
    EffectFailed,
    GatewayApp,
    HostFacts,
    Interrupt,
    Job,
    KeepDecisions,
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
    default_router,
)
from gateway_core.auth import is_loopback
from gateway_core.providers import offline
from gateway_core.providers.errors import ProviderError

from .runner import Item

WALL0 = 1_800_000_000_000  # the virtual wall clock's epoch ms at t=0
VERSION = "0.1.0-core"
CONFIG_PATH = "/virtual/.openclaw/openclaw.json"
LOG_PATH = "/virtual/openclaw.log"


class SimHost:
    """The host side of many ServerConnections and one GatewayApp, all on one virtual clock."""

    def __init__(self, auth: str, token: str, password: str) -> None:
        secret = SharedSecret(
            mode=auth,  # type: ignore[arg-type]
            token=token if auth == "token" else None,
            password=password if auth == "password" else None,
        )
        self.services = MemoryServices(secret)
        self.now = 0.0  # seconds
        config = {"gateway": {"auth": {"mode": auth, "token": token}}}
        self.files: dict[str, bytes] = {CONFIG_PATH: json.dumps(config, indent=2).encode()}
        self.app = GatewayApp(
            router=default_router(),
            facts=HostFacts(
                version=VERSION,
                boot_id=str(uuid.UUID(int=7)),
                hostname="core",
                config_path=CONFIG_PATH,
                state_dir="/virtual/.openclaw",
                log_path=LOG_PATH,
                identity={"deviceId": "core-gateway", "publicKey": "core-gateway-key"},
            ),
            policy=ServerPolicy(server_version=VERSION, boot_id=str(uuid.UUID(int=7)), auto_tick=False),
            secret=secret,
            config=config,
            now=0.0,
            wall_ms=WALL0,
        )
        self.app.refresh_health(0.0, WALL0)
        self.conns: dict[str, ServerConnection] = {}
        self.names: dict[str, str] = {}  # conn id → transcript connection name
        self.inbox: dict[str, deque[Item]] = {}
        self.log_lines: list[str] = [json.dumps({"time": WALL0, "message": f"gateway {VERSION} started"})]
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._ids = 0
        #: When set, file writes fail with this reason (a full or read-only disk, simulated).
        self.write_failure: str | None = None
        self._jobs_by_conn: dict[str, set[Job]] = {}
        self._run_waiters: dict[str, list[Callable[[], None]]] = {}
        self._ids_made = 0
        self.store = MemorySessionStore(self._new_session_id)
        self._streams: dict[int, tuple[list[Any], str]] = {}
        self._lane_waiters: dict[str, Callable[[], None]] = {}
        self._lanes_granted: set[str] = set()
        #: Spawned jobs by key (run id), with how to interrupt their current wait.
        self._keyed: dict[str, Job] = {}
        self._cancel_wait: dict[int, Callable[[], None]] = {}

    # ------------------------------------------------------------------ clock

    @property
    def wall_ms(self) -> int:
        return WALL0 + int(round(self.now * 1000))

    def next_deadline(self) -> float | None:
        candidates = [c.next_deadline() for c in self.conns.values()]
        candidates = [c for c in candidates if c is not None]
        if self._timers:
            candidates.append(self._timers[0][0])
        app_due = self.app.next_deadline()
        if app_due is not None:
            candidates.append(app_due)
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
        self.app.handle_timer(self.now, self.wall_ms)
        for conn in list(self.conns.values()):
            d = conn.next_deadline()
            if d is not None and d <= self.now:
                conn.handle_timer(now=self.now, wall_ms=self.wall_ms)
        self.pump()

    def later(self, seconds: float, fn: Callable[[], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (self.now + seconds, self._timer_seq, fn))

    def _new_session_id(self) -> str:
        self._ids_made += 1
        return str(uuid.UUID(int=0x5E55_0000 + self._ids_made, version=4))

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
        conn = ServerConnection(
            policy=self.app.policy,
            services=self.services,
            now=self.now,
            wall_ms=self.wall_ms,
            nonce=str(uuid.UUID(int=0x5EED0000 + self._ids, version=4)),
            conn_id=str(uuid.UUID(int=0xC0000 + self._ids, version=4)),
            peer=info,
        )
        self.conns[name] = conn
        self.names[conn.conn_id] = name
        self.inbox[name] = deque()
        self.pump()

    def deliver(self, name: str, data: str | bytes) -> None:
        conn = self.conns[name]
        if isinstance(data, bytes):
            conn.receive_bytes(data, now=self.now, wall_ms=self.wall_ms)
        else:
            conn.receive_text(data, now=self.now, wall_ms=self.wall_ms)

    def pump(self) -> None:
        """Drain every connection's actions and events, and the app's outbox, until nothing moves."""
        moved = True
        while moved:
            moved = False
            for name, conn in list(self.conns.items()):
                for action in conn.actions():
                    moved = True
                    self._transport(name, conn, action)
                for event in conn.events():
                    moved = True
                    self._connection_event(conn, event)
            outputs = self.app.take_outbox()
            if outputs:
                moved = True
                for output in outputs:
                    self._output(output)

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

    def _connection_event(self, conn: ServerConnection, event: Any) -> None:
        if isinstance(event, HandshakeAuthenticated):
            self.services.apply(event.decisions)  # the simulator's disk never fails for devices
            conn.accept(self.app.snapshot(self.now, self.wall_ms), now=self.now, wall_ms=self.wall_ms)
            self.app.connected(conn.conn_id, event.principal, self.wall_ms)
        elif isinstance(event, PairingRequested):
            self.services.apply((event.request,))
        elif isinstance(event, RequestReceived):
            job = self.app.request(conn.conn_id, event, self.now, self.wall_ms)
            if job is not None:
                self._jobs_by_conn.setdefault(conn.conn_id, set()).add(job)
                self._perform(job)
        elif isinstance(event, PongReceived):
            self.app.pong(conn.conn_id, self.wall_ms)
        elif isinstance(event, ConnectionTerminated):
            for job in self._jobs_by_conn.pop(conn.conn_id, set()):
                job.cancel()
            self.app.disconnected(conn.conn_id, self.wall_ms)

    # ------------------------------------------------------------------ the app's outputs

    def _conn(self, conn_id: str) -> ServerConnection | None:
        name = self.names.get(conn_id)
        return self.conns.get(name) if name is not None else None

    def _output(self, output: Any) -> None:
        if isinstance(output, Reply):
            conn = self._conn(output.conn_id)
            if conn is None:
                return
            if output.ok:
                conn.respond(output.request_id, output.payload, final=output.final)
            else:
                assert output.error is not None
                conn.respond_error(output.request_id, output.error, payload=output.payload, final=output.final)
        elif isinstance(output, Publish):
            for conn in self.conns.values():
                if output.to is None or conn.conn_id in output.to:
                    conn.publish(
                        output.event, output.payload, state_version=output.state_version, drop_if_slow=output.drop_if_slow
                    )
        elif isinstance(output, CloseConnection):
            conn = self._conn(output.conn_id)
            if conn is not None:
                conn.close(output.code, output.reason, now=self.now)
        elif isinstance(output, LogLine):
            self.log_lines.append(json.dumps({"time": self.wall_ms, "level": output.level, "message": output.message}))
        elif isinstance(output, Spawn):
            if output.key is not None:
                self._keyed[output.key] = output.job
            output.job.step(None, now=self.now, wall_ms=self.wall_ms)
            self._perform(output.job)
        elif isinstance(output, RunSettled):
            self._keyed.pop(output.run_id, None)
            for wake in self._run_waiters.pop(output.run_id, []):
                wake()
        elif isinstance(output, LaneGranted):
            wake = self._lane_waiters.pop(output.run_id, None)
            if wake is not None:
                wake()
            else:
                self._lanes_granted.add(output.run_id)
        elif isinstance(output, Interrupt):
            job = self._keyed.get(output.key)
            if job is not None and not job.done:
                cancel = self._cancel_wait.pop(id(job), None)
                if cancel is not None:
                    cancel()
                job.step(now=self.now, wall_ms=self.wall_ms, exc=RunAborted())
                self._perform(job)

    # ------------------------------------------------------------------ effects, in memory

    def _perform(self, job: Job) -> None:
        """Carry out ``job``'s pending effect; resume it now or when the virtual clock says."""
        effect = job.pending
        if effect is None or job.done:
            return

        token = [True]  # False once this wait is cancelled (an Interrupt resumed the job instead)

        def resume(value: Any = None, exc: BaseException | None = None) -> None:
            if job.done or not token[0]:
                return
            token[0] = False
            self._cancel_wait.pop(id(job), None)
            job.step(value, now=self.now, wall_ms=self.wall_ms, exc=exc)
            self._perform(job)

        self._cancel_wait[id(job)] = lambda: token.__setitem__(0, False)
        if isinstance(effect, Sleep):
            self.later(effect.seconds, resume)
        elif isinstance(effect, AwaitLane):
            if effect.run_id in self._lanes_granted:
                self._lanes_granted.discard(effect.run_id)
                resume(None)
            else:
                self._lane_waiters[effect.run_id] = resume
        elif isinstance(effect, StoreCall):
            try:
                value = getattr(self.store, effect.method)(*effect.args, **effect.kwargs)
            except Exception as exc:  # noqa: BLE001 - a store failure goes back into the job
                resume(exc=EffectFailed("storage", str(exc)))
            else:
                resume(value)
        elif isinstance(effect, ModelOpen):
            resume(self._open_stream(effect))
        elif isinstance(effect, ModelNext):
            events, ref = self._streams.get(effect.handle, ([], "?/?"))
            if isinstance(events, ProviderError):
                resume(exc=ModelFailed(events))
            elif events:
                resume(Streamed(events.pop(0), ref))
            else:
                self._streams.pop(effect.handle, None)
                resume(Streamed(None, ref))
        elif isinstance(effect, ModelClose):
            self._streams.pop(effect.handle, None)
            resume(None)
        elif isinstance(effect, TurnWritten):  # nobody answers early here
            resume(None)
        elif isinstance(effect, WaitRun):
            fired = [False]

            def settle(done: bool) -> None:
                if not fired[0]:
                    fired[0] = True
                    resume(done)

            self._run_waiters.setdefault(effect.run_id, []).append(lambda: settle(True))
            self.later(effect.timeout_s, lambda: settle(False))
        elif isinstance(effect, KeepDecisions):
            self.services.apply(effect.decisions)
            resume(None)
        elif isinstance(effect, ReadFile):
            resume(self.files.get(effect.path))
        elif isinstance(effect, WriteFile) and self.write_failure is not None:
            detail = f"{self.write_failure}: {effect.path}"
            self.log_lines.append(json.dumps({"time": self.wall_ms, "level": "error", "message": f"config write failed: {detail}"}))
            resume(exc=EffectFailed("storage", self.write_failure.lower(), detail))
        elif isinstance(effect, WriteFile):
            if effect.backup and effect.path in self.files:
                self.files[effect.path + ".bak"] = self.files[effect.path]
            self.files[effect.path] = effect.data
            resume(None)
        elif isinstance(effect, TailLog):
            resume(self._tail(effect))
        elif isinstance(effect, ResolveSecrets):
            resume(None)  # core mode has no config watcher: nothing to re-resolve
        else:
            resume(exc=EffectFailed("unsupported", f"{type(effect).__name__} is not simulated"))

    def _open_stream(self, effect: ModelOpen) -> int:
        """Core mode has no network: the offline provider answers; any other provider fails to connect."""
        req = effect.candidates[0]
        handle = len(self._streams) + 1 + self._ids_made * 1000
        if req.api in offline.APIS:
            self._streams[handle] = (list(offline.echo_events(req)), req.ref)
        else:
            self._streams[handle] = (ProviderError("network", "core mode has no network"), req.ref)  # type: ignore[assignment]
        return handle

    def _tail(self, effect: TailLog) -> dict[str, Any]:
        data = "".join(line + "\n" for line in self.log_lines).encode()
        size = len(data)
        out: dict[str, Any] = {"file": LOG_PATH, "cursor": size, "size": size}
        if effect.cursor is None:
            lines = data.decode().splitlines()[-effect.limit :]
        elif effect.cursor > size:
            out["reset"] = True
            lines = data.decode().splitlines()[-effect.limit :]
        else:
            lines = data[effect.cursor :].decode().splitlines()[: effect.limit]
        out["lines"] = lines
        return out

    # ------------------------------------------------------------------ gateway control

    def shutdown(self, restart_expected_ms: int | None) -> None:
        self.app.begin_shutdown()
        for conn in self.conns.values():
            conn.begin_shutdown(now=self.now, wall_ms=self.wall_ms, restart_expected_ms=restart_expected_ms)
        self.services.phase = Admission.RESTARTING if restart_expected_ms is not None else Admission.ACCEPTING
        self.pump()


class CoreDriver:
    """Driver over :class:`SimHost`: every coroutine completes without suspending."""

    name = "core"

    def __init__(self, auth: str = "token", token: str = "T", password: str = "P") -> None:
        self.gw = SimHost(auth, token, password)

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


__all__ = ["CoreDriver", "SimHost", "run_sync"]
