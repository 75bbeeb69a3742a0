"""``run_gateway``: the always-on process: one Trio listener per bind host, all on one port.

Lifecycle: lock the state dir → bind the listeners (127.0.0.1 and ::1 for loopback, same port)
→ serve → on SIGTERM/SIGINT drain and exit, on SIGUSR1/SIGUSR2 restart in process on the same
sockets' port and bind. Every step is logged to the console and the JSONL file log.

Resource handling: the listening sockets, the state-dir lock and the file log are owned here and
released on every exit path. Error handling: refusals raise :class:`StartupError` with the exact
text and exit code; the CLI prints them.
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import trio

from gateway_core.services import Admission

from . import _runtime
from .app import Gateway
from .discovery import Advertiser
from .listener import GatewayRef, SocketTracker, serve_listeners
from .reloader import ReloadState, watch_config
from .runtime import FileLog, GatewaySettings, StartupError, acquire_state_lock, record_port, release_state_lock

#: Port sources that pin the port across config reloads (the issue: config ports are re-read).
PINNED = frozenset({"--port", "OPENCLAW_GATEWAY_PORT"})

BIND_RETRIES = 20
BIND_RETRY_S = 0.5
DRAIN_BUDGET_S = 10.0
#: After the drain: the shutdown event and close 1012 (a peer that does not answer the close is cut
#: after the 1 s close grace), with a margin.
CLOSE_BUDGET_S = 5.0
RESTART_EXPECTED_MS = 1500


@dataclass
class Control:
    """Lets tests (and signals) stop or restart a running gateway."""

    send: trio.MemorySendChannel[tuple[str, str, GatewaySettings | None]]
    receive: trio.MemoryReceiveChannel[tuple[str, str, GatewaySettings | None]]
    port: int = 0
    hosts: list[str] = field(default_factory=list)

    @classmethod
    def new(cls) -> Control:
        send, receive = trio.open_memory_channel[tuple[str, str, GatewaySettings | None]](16)
        return cls(send, receive)

    def stop(self, why: str = "stop") -> None:
        self.send.send_nowait(("stop", why, None))

    def restart(self, why: str = "restart", *, settings: GatewaySettings | None = None) -> None:
        """Restart in process; with ``settings``, come back with those (a config reload)."""
        self.send.send_nowait(("restart", why, settings))


async def bind_sockets(hosts: list[str], port: int) -> tuple[list[socket.socket], int]:
    """Bind every listener host on one port (port 0 picks one for all). Retries EADDRINUSE ~10 s
    (sleeping on Trio's clock, so a retrying start still answers signals)."""
    for attempt in range(BIND_RETRIES + 1):
        bound: list[socket.socket] = []
        chosen = port
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind((host, chosen))
                except OSError as exc:
                    sock.close()
                    if (
                        family == socket.AF_INET6
                        and host == "::1"
                        and exc.errno
                        in (
                            errno.EADDRNOTAVAIL,
                            errno.EAFNOSUPPORT,
                        )
                    ):
                        continue  # no IPv6 loopback on this machine: serve IPv4 only
                    raise
                sock.listen(1024)
                sock.setblocking(False)
                chosen = sock.getsockname()[1]
                bound.append(sock)
            return bound, chosen
        except OSError as exc:
            for s in bound:
                s.close()
            shown = f"[{host}]" if ":" in host else host
            if exc.errno == errno.EADDRINUSE:
                if attempt < BIND_RETRIES:
                    await trio.sleep(BIND_RETRY_S)
                    continue
                raise StartupError(
                    f"Gateway failed to start: another gateway instance is already listening on "
                    f"ws://{shown}:{port} | listen EADDRINUSE: address already in use {shown}:{port} | EADDRINUSE\n"
                    f"If the gateway is supervised, stop it with: openclaw gateway stop\n"
                    f"Port {port} is already in use.",
                    1,
                ) from None
            raise StartupError(
                f"Gateway failed to start: failed to bind gateway socket on ws://{shown}:{port}: {exc}", 1
            ) from None
    raise AssertionError("unreachable")


async def _signals(control: Control) -> None:
    names = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1", signal.SIGUSR2: "SIGUSR2"}
    with trio.open_signal_receiver(*names) as received:
        async for signum in received:
            name = names[signal.Signals(signum)]
            if name in ("SIGUSR1", "SIGUSR2"):
                control.restart(name)
            else:
                control.stop(name)


async def run_gateway(
    settings: GatewaySettings,
    log: FileLog,
    *,
    control: Control | None = None,
    handle_signals: bool = True,
    resolve_again: Callable[[], GatewaySettings] | None = None,
    lock_fd: int | None = None,
    task_status: trio.TaskStatus[Control] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve until stopped; returns the process exit status (0 on a clean stop).

    With ``resolve_again`` (how ``gateway run`` resolves its settings), the config file is
    watched and changes are hot-applied or restart the gateway in process (see reloader.py).
    With ``lock_fd`` the caller already holds the state-dir lock (and releases it).
    """
    control = control or Control.new()
    state_dir = settings.paths.state_dir
    owns_lock = lock_fd is None
    if lock_fd is None:
        lock_fd = await trio.to_thread.run_sync(acquire_state_lock, state_dir)  # it may wait ~s
    ref = GatewayRef()
    state = ReloadState(settings)
    state.resolve_again = resolve_again
    started = _runtime.now()
    try:
        log.info("gateway", "starting...")
        sockets, port = await bind_sockets(settings.hosts, settings.port)
        control.port, control.hosts = port, [s.getsockname()[0] for s in sockets]
        record_port(lock_fd, port)
        restarts = 0
        reported = False
        exit_code = 0
        async with trio.open_nursery() as outer:
            if handle_signals:
                outer.start_soon(_signals, control)
            stop_watching = trio.Event()
            if resolve_again is not None:
                outer.start_soon(watch_config, state, resolve_again, ref, control, stop_watching)
            advertiser = Advertiser(log)
            outer.start_soon(advertiser.run)
            state.on_applied = lambda applied: advertiser.want(applied, control.port)
            while True:
                gw = Gateway(state.settings, log, restart_count=restarts, reload_state=state, port=port)
                ref.gateway = gw
                async with trio.open_nursery() as nursery:
                    log.info("gateway", "starting HTTP server...")
                    await nursery.start(gw.serve)
                    listeners = [trio.socket.from_stdlib_socket(_dup(s)) for s in sockets]
                    accept_scope = trio.CancelScope()
                    tracker = SocketTracker(log=partial(log.warn, "gateway/http"))
                    await nursery.start(_serve, ref, listeners, tracker, accept_scope)
                    gw.refresh_health()
                    gw.services.phase = Admission.ACCEPTING
                    shown = ", ".join(f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in control.hosts)
                    log.info(
                        "gateway",
                        f"http server listening on {shown} ({_runtime.now() - started:.1f}s)",
                    )
                    log.info("gateway", f"log file: {log.path}")
                    log.info("gateway", "ready")
                    advertiser.want(state.settings, port)
                    if not reported:
                        task_status.started(control)
                        reported = True
                    action, why, new_settings = await control.receive.receive()
                    t0 = _runtime.now()
                    restart = action == "restart"
                    log.info("admission", f"closed: {action} ({why})")
                    if restart:
                        log.info("gateway", f"received {why}; restarting")
                        log.info("gateway", "restart mode: in-process restart (unmanaged: keep the process)")
                    else:
                        log.info("gateway", f"received {why}; shutting down")
                    log.info(
                        "gateway",
                        f"shutdown budget at shutdown: drain={int(DRAIN_BUDGET_S * 1000)}ms "
                        f"shutdown={int(DRAIN_BUDGET_S * 1000) + 10000}ms reserve=10000ms exitMargin=5000ms",
                    )
                    # 1. admission closed; 2. requests in flight answered (or failed at the budget);
                    # 3. shutdown event and close 1012; 4. the rest (runtime-cli.md §8.2).
                    gw.close_admission()
                    inflight = gw.inflight()
                    if inflight:
                        log.info(
                            "gateway",
                            f"draining active work before stop with timeout {int(DRAIN_BUDGET_S * 1000)}ms: "
                            f"requests={inflight}",
                        )
                    failed = await gw.drain(DRAIN_BUDGET_S, restart=restart)
                    if failed:
                        log.warn(
                            "shutdown",
                            f"{failed} request(s) still in flight after the drain budget: answered UNAVAILABLE",
                        )
                    log.info("gateway", "active-work drain settled; beginning server close")
                    gw.begin_shutdown(RESTART_EXPECTED_MS if restart else None)
                    accept_scope.cancel()  # stop accepting; the listeners close
                    clean = True
                    with trio.move_on_after(CLOSE_BUDGET_S):
                        for session in list(gw.sessions.values()):
                            await session.wait_closed()
                    if gw.sessions:
                        clean = False
                        log.warn("shutdown", f"{len(gw.sessions)} connection(s) still open after the close budget")
                    nursery.cancel_scope.cancel()  # the rest: HTTP keep-alives, pre-auth sockets, the ticker
                elapsed = int((_runtime.now() - t0) * 1000)
                if clean:
                    log.info("shutdown", f"completed cleanly in {elapsed}ms")
                else:
                    log.error("shutdown", f"drain budget exceeded; forced close after {elapsed}ms")
                    exit_code = 1
                ref.gateway = None
                if not restart:
                    break
                restarts += 1
                target = new_settings or state.settings
                if (target.port, target.hosts) != (settings.port, settings.hosts) and target.port_source in PINNED:
                    log.warn(
                        "reload",
                        f"gateway.port/bind changed in the config, but the port is pinned by {target.port_source}; "
                        f"keeping {port}",
                    )
                elif (target.port, target.hosts) != (port, settings.hosts):
                    for s in sockets:
                        s.close()
                    sockets, port = await bind_sockets(target.hosts, target.port)
                    control.port, control.hosts = port, [s.getsockname()[0] for s in sockets]
                    record_port(lock_fd, port)
                    settings = target
                    log.info("gateway", f"rebinding on port {port} (bind {target.bind})")
            stop_watching.set()  # the watcher thread returns within its 50 ms step, not its 5 s timeout
            outer.cancel_scope.cancel()
        for s in sockets:
            s.close()
        return exit_code
    finally:
        if owns_lock:
            release_state_lock(lock_fd, state_dir)


async def _serve(
    ref: GatewayRef,
    listeners: list[trio.socket.SocketType],
    tracker: SocketTracker,
    accept_scope: trio.CancelScope,
    task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener until ``accept_scope`` is cancelled; connections live in a nursery
    that outlives accepting (so the drain can let them finish)."""
    async with trio.open_nursery() as handlers:
        task_status.started(handlers)
        try:
            with accept_scope:
                await serve_listeners(ref, listeners, tracker, handlers)
        finally:
            for listener in listeners:
                listener.close()


def _dup(sock: socket.socket) -> socket.socket:
    """Listeners close their socket; serve a duplicate so an in-process restart can serve again."""
    dup = sock.dup()
    dup.setblocking(False)
    return dup


__all__ = ["Control", "bind_sockets", "run_gateway"]
