"""Bounded WebSocket load client for the gateway benchmarks (Trio + wsproto, loopback only).

Why raw wsproto and not trio-websocket: trio-websocket runs wsproto underneath and adds a reader
task, a memory channel and an event per connection; driving wsproto directly from the caller's
task is measurably cheaper per message, and the load client must not be what limits throughput.
No extensions are offered in the upgrade request, so ``permessage-deflate`` is never negotiated.
Incoming frames are decoded with msgspec into a tiny struct whose ``payload`` stays raw, so a big
``health`` snapshot is never turned into Python objects.

Every loop here is bounded in count and in time, and only ``127.0.0.1`` is ever contacted.

Run as a separate process by ``bench/run.py`` (so the runner's own work never competes with the
load); each sub-command prints one line ``RESULT {json}`` on stdout at the end:

    python -m bench.loadclient handshake --port P --token T --count 200
    python -m bench.loadclient health --port P --token T --conns 8 --warmup 1 --duration 5
    python -m bench.loadclient hold --port P --token T --conns 500 --trials 5
        (prints ``READY {json}`` once all connections are authenticated, then waits for a line
        ``go`` on stdin, runs the fan-out trials, prints ``RESULT``, closes everything, exits)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import threading
import time
from collections import deque
from functools import partial
from typing import Any

import msgspec
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

HOST = "127.0.0.1"
ADMIN_SCOPES = ["operator.read", "operator.write", "operator.admin"]
#: The published gateway refuses more than 32 concurrent unauthenticated sockets per IP.
MAX_PARALLEL_HANDSHAKES = 16
#: Upper bound of frames skipped while waiting for one particular frame.
MAX_SKIPPED_FRAMES = 100_000
#: Upper bound of requests one connection sends in a measured load run.
MAX_REQUESTS_PER_CONN = 5_000_000
perf = time.perf_counter


class Frame(msgspec.Struct):
    """The few top-level fields the client looks at; the payload stays undecoded."""

    type: str = ""
    id: str | None = None
    ok: bool | None = None
    event: str | None = None
    payload: msgspec.Raw = msgspec.Raw()  # empty (falsy) when absent
    error: msgspec.Raw = msgspec.Raw()


_decode = msgspec.json.Decoder(Frame).decode


class WSClosed(Exception):
    """The server closed the WebSocket (or the TCP connection)."""


class ConnectRefused(Exception):
    """The gateway answered ``connect`` with an error (e.g. UNAVAILABLE while starting)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def connect_frame(token: str, scopes: list[str] | None = None) -> str:
    return json.dumps(
        {
            "type": "req",
            "id": "c",
            "method": "connect",
            "params": {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
                "scopes": ADMIN_SCOPES if scopes is None else scopes,
                "auth": {"token": token},
            },
        },
        separators=(",", ":"),
    )


class Client:
    """One client WebSocket driven directly by the calling task (no background tasks)."""

    __slots__ = ("stream", "ws", "pending", "parts", "closed")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: deque[str] = deque()
        self.parts: list[str] = []
        self.closed = False

    @classmethod
    async def open(cls, port: int) -> Client:
        stream = await trio.open_tcp_stream(HOST, port)
        c = cls(stream)
        try:
            return await c._upgrade(port)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await _hard_close(stream)
            raise WSClosed(f"during upgrade: {exc}") from exc
        except BaseException:
            await _hard_close(stream)
            raise

    async def _upgrade(self, port: int) -> Client:
        """HTTP/1.1 upgrade (no extensions offered: no permessage-deflate)."""
        await self.stream.send_all(self.ws.send(Request(host=f"{HOST}:{port}", target="/")))
        for _ in range(1000):
            data = await self.stream.receive_some(65536)
            if not data:
                raise WSClosed("eof during upgrade")
            self.ws.receive_data(data)
            for ev in self.ws.events():
                if isinstance(ev, AcceptConnection):
                    self._absorb()  # frames that arrived with the 101 (e.g. connect.challenge)
                    return self
                if isinstance(ev, (RejectConnection, RejectData)):
                    raise WSClosed(f"upgrade rejected: HTTP {getattr(ev, 'status_code', '?')}")
        raise WSClosed("upgrade did not complete")

    def _absorb(self) -> list[bytes]:
        """Move decoded events into ``pending``; returns bytes that must be sent (pongs, close)."""
        out: list[bytes] = []
        for ev in self.ws.events():
            if isinstance(ev, TextMessage):
                if ev.message_finished and not self.parts:
                    self.pending.append(ev.data)
                else:
                    self.parts.append(ev.data)
                    if ev.message_finished:
                        self.pending.append("".join(self.parts))
                        self.parts.clear()
            elif isinstance(ev, BytesMessage):
                self.parts.append(bytes(ev.data).decode("utf-8", "replace"))
                if ev.message_finished:
                    self.pending.append("".join(self.parts))
                    self.parts.clear()
            elif isinstance(ev, Ping):
                out.append(self.ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                self.closed = True
                try:
                    out.append(self.ws.send(ev.response()))
                except Exception:
                    pass
        return out

    async def recv(self) -> str:
        """Next text message; raises :class:`WSClosed` once the connection is gone."""
        pending = self.pending
        for _ in range(100_000):
            if pending:
                return pending.popleft()
            if self.closed:
                raise WSClosed("closed by server")
            try:
                data = await self.stream.receive_some(262144)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.closed = True
                raise WSClosed(str(exc)) from exc
            if not data:
                self.closed = True
                raise WSClosed("eof")
            self.ws.receive_data(data)
            for chunk in self._absorb():
                try:
                    await self.stream.send_all(chunk)
                except trio.BrokenResourceError:
                    pass
        raise WSClosed("no complete message after 100000 reads")

    async def send(self, text: str) -> None:
        try:
            await self.stream.send_all(self.ws.send(TextMessage(data=text)))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise WSClosed(str(exc)) from exc

    async def request(self, rid: str, text: str) -> Frame:
        """Send a request and wait for the response with that id (events are skipped)."""
        await self.send(text)
        for _ in range(MAX_SKIPPED_FRAMES):
            f = _decode(await self.recv())
            if f.type == "res" and f.id == rid:
                return f
        raise WSClosed(f"no response to {rid} within {MAX_SKIPPED_FRAMES} frames")

    async def aclose(self, timeout: float = 1.0) -> None:
        """Polite close (close frame, wait for the echo up to ``timeout``), then close TCP."""
        with trio.move_on_after(timeout) as scope:
            scope.shield = True
            try:
                if not self.closed and self.ws.state.name == "OPEN":
                    await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
                    for _ in range(1000):
                        if self.closed:
                            break
                        data = await self.stream.receive_some(262144)
                        if not data:
                            break
                        self.ws.receive_data(data)
                        self._absorb()
            except Exception:
                pass
        await _hard_close(self.stream)


async def _hard_close(stream: trio.SocketStream) -> None:
    with trio.CancelScope(shield=True):
        try:
            await stream.aclose()
        except Exception:
            pass


async def handshake(port: int, token: str, timeout: float = 10.0, scopes: list[str] | None = None) -> Client:
    """Open a socket, wait for ``connect.challenge``, send ``connect``, return after hello-ok."""
    with trio.fail_after(timeout):
        c = await Client.open(port)
        try:
            for _ in range(MAX_SKIPPED_FRAMES):
                f = _decode(await c.recv())
                if f.type == "event" and f.event == "connect.challenge":
                    break
            else:
                raise WSClosed("no connect.challenge")
            await c.send(connect_frame(token, scopes))
            for _ in range(MAX_SKIPPED_FRAMES):
                f = _decode(await c.recv())
                if f.type == "res" and f.id == "c":
                    if f.ok and f.payload and msgspec.json.decode(f.payload).get("type") == "hello-ok":
                        return c
                    err: dict[str, Any] = msgspec.json.decode(f.error) if f.error else {}
                    raise ConnectRefused(str(err.get("code", "?")), str(err.get("message", "")))
            raise WSClosed("no connect response")
        except BaseException:
            await c.aclose(0.2)
            raise


async def open_many(port: int, token: str, n: int, deadline: float) -> list[Client]:
    """Authenticate ``n`` connections, at most 16 handshakes in flight (pre-auth cap is 32/IP)."""
    clients: list[Client] = []
    limiter = trio.CapacityLimiter(MAX_PARALLEL_HANDSHAKES)

    async def one() -> None:
        async with limiter:
            for attempt in range(20):
                try:
                    clients.append(await handshake(port, token, timeout=max(0.1, deadline - perf())))
                    return
                except (ConnectRefused, WSClosed, OSError):
                    if attempt == 19 or perf() > deadline:
                        raise
                    await trio.sleep(0.05 * (attempt + 1))

    try:
        with trio.fail_after(max(0.1, deadline - perf())):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(one)
    except BaseException:
        await close_many(clients)
        raise
    return clients


async def close_many(clients: list[Client], timeout: float = 5.0) -> None:
    with trio.move_on_after(timeout) as scope:
        scope.shield = True
        async with trio.open_nursery() as nursery:
            for c in clients:
                nursery.start_soon(c.aclose, 1.0)
    for c in clients:  # anything the polite close did not reach
        await _hard_close(c.stream)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def summary_ms(values_s: list[float]) -> dict[str, Any]:
    v = sorted(values_s)
    ms = lambda x: None if x is None else round(x * 1000.0, 3)  # noqa: E731
    return {
        "n": len(v),
        "p50_ms": ms(percentile(v, 50)),
        "p90_ms": ms(percentile(v, 90)),
        "p99_ms": ms(percentile(v, 99)),
        "max_ms": ms(v[-1] if v else None),
        "mean_ms": ms(sum(v) / len(v) if v else None),
    }


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc, one pass)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_ticks(root: int) -> int:
    """CPU time (clock ticks) of the process tree under ``root``: utime+stime of every live process
    plus cutime+cstime (reaped children), so children that exit mid-window are still counted."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            pass
    return total


def system_busy_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks summed over all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat", "rb") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return user + nice + system + irq + softirq + steal, steal


class CpuWindow:
    """CPU use over a time window: this process, the watched gateway tree, and everything else on
    the machine (a noise indicator: other sessions' jobs on a shared box skew every figure)."""

    def __init__(self, watch_pid: int = 0) -> None:
        self.watch = watch_pid
        self.t0 = self.t1 = 0.0
        self.a: tuple[float, int, tuple[int, int]] = (0.0, 0, (0, 0))
        self.b = self.a

    def _sample(self) -> tuple[float, int, tuple[int, int]]:
        return time.process_time(), cpu_ticks(self.watch) if self.watch else 0, system_busy_ticks()

    def start(self) -> None:
        self.t0, self.a = perf(), self._sample()

    def stop(self) -> dict[str, Any]:
        self.t1, self.b = perf(), self._sample()
        return self.result()

    def result(self) -> dict[str, Any]:
        wall = max(1e-9, self.t1 - self.t0)
        tck = os.sysconf("SC_CLK_TCK")
        own = 100.0 * (self.b[0] - self.a[0]) / wall
        gw = 100.0 * (self.b[1] - self.a[1]) / tck / wall
        busy = 100.0 * (self.b[2][0] - self.a[2][0]) / tck / wall
        steal = 100.0 * (self.b[2][1] - self.a[2][1]) / tck / wall
        return {
            "window_s": round(wall, 3),
            "client_cpu_pct": round(own, 1),
            "gateway_cpu_pct": round(gw, 1) if self.watch else None,
            # jiffy-granular (10 ms): only meaningful over windows of a second or more
            "other_cpu_pct": round(max(0.0, busy - gw - own), 1) if self.watch else None,
            "steal_pct": round(steal, 1),
        }


# ---------------------------------------------------------------------------------------------
# sub-commands


async def cmd_handshake(args: argparse.Namespace) -> dict[str, Any]:
    """``count`` sequential handshakes: TCP open → hello-ok, each then closed politely."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    with trio.fail_after(args.time_limit):
        for _ in range(args.warmup_count):
            try:
                c = await handshake(args.port, args.token)
                await c.aclose()
            except (ConnectRefused, WSClosed, OSError, trio.TooSlowError):
                pass
        cpu = CpuWindow(args.watch_pid)
        cpu.start()
        for _ in range(args.count):
            t0 = perf()
            try:
                c = await handshake(args.port, args.token)
            except (ConnectRefused, WSClosed, OSError, trio.TooSlowError) as exc:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                continue
            lat.append(perf() - t0)
            await c.aclose()
        cpu.stop()
    return {"kind": "handshake", **summary_ms(lat), "errors": errors, **cpu.result()}


async def cmd_health(args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: ``conns`` connections, each one ``health`` request in flight at a time."""
    t_open = perf()
    clients = await open_many(args.port, args.token, args.conns, perf() + args.connect_timeout)
    open_s = perf() - t_open
    lat: list[float] = []
    record = lat.append
    counts = {"ok": 0, "error": 0, "closed": 0}
    t_start = perf() + args.warmup
    t_end = t_start + args.duration

    async def worker(c: Client) -> None:
        ok = err = 0
        for n in range(MAX_REQUESTS_PER_CONN):
            t0 = perf()
            if t0 >= t_end:
                break
            rid = str(n)
            try:
                f = await c.request(rid, '{"type":"req","id":"' + rid + '","method":"health","params":{}}')
            except WSClosed:
                counts["closed"] += 1
                return
            if t0 >= t_start:
                record(perf() - t0)
                if f.ok:
                    ok += 1
                else:
                    err += 1
        counts["ok"] += ok
        counts["error"] += err

    cpu = CpuWindow(args.watch_pid)

    async def sampler() -> None:
        await trio.sleep(max(0.0, t_start - perf()))
        cpu.start()
        await trio.sleep(max(0.0, t_end - perf()))
        cpu.stop()

    try:
        with trio.fail_after(args.warmup + args.duration + 30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sampler)
                for c in clients:
                    nursery.start_soon(worker, c)
    finally:
        await close_many(clients)
    n_done = len(lat)
    return {
        "kind": "health",
        "conns": args.conns,
        "duration_s": cpu.result()["window_s"],
        "calls": n_done,
        "calls_per_s": round(n_done / args.duration, 1),
        **summary_ms(lat),
        "ok": counts["ok"],
        "errors": counts["error"],
        "closed_early": counts["closed"],
        **cpu.result(),
        "connect_s": round(open_s, 3),
    }


async def _read_line(deadline: float) -> str:
    with trio.fail_after(max(0.1, deadline - perf())):
        return await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


def split_frames(data: bytes) -> tuple[list[str | bytes], bytes]:
    """Cut server-to-client bytes that start at a frame boundary into whole frames.

    An unfragmented, unmasked text frame (``FIN``, no RSV bits, opcode 1: every frame a gateway
    sends for one event) comes out as its text; any other frame (control, binary, fragment,
    masked, bad UTF-8) as its raw bytes, for wsproto to handle as usual. The incomplete rest is
    returned to be prefixed to the next read. This is what lets the thread reader keep up with
    a fast gateway: wsproto's parsing costs about 10 µs per message here, this about 1.
    """
    out: list[str | bytes] = []
    i, n = 0, len(data)
    while n - i >= 2:
        b0, b1 = data[i], data[i + 1]
        size, j = b1 & 0x7F, i + 2
        if size == 126:
            if n - j < 2:
                break
            size, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        elif size == 127:
            if n - j < 8:
                break
            size, j = int.from_bytes(data[j : j + 8], "big"), j + 8
        if b1 & 0x80:
            j += 4  # a masking key (a server must not mask: wsproto refuses it)
        end = j + size
        if end > n:
            break
        if b0 == 0x81 and not b1 & 0x80:
            try:
                out.append(data[j:end].decode())
            except UnicodeDecodeError:
                out.append(data[i:end])
        else:
            out.append(data[i:end])
        i = end
    return out, data[i:]


def _at_frame_boundary(ws: WSConnection) -> bool:
    """Whether wsproto holds no partial frame or message (so raw bytes may bypass it from now
    on). Reads wsproto 1.x internals; anything unexpected answers False (wsproto keeps the
    client)."""
    try:
        proto = ws.connection._proto  # type: ignore[union-attr]
        frames, messages = proto._frame_decoder, proto._message_decoder
        return frames.header is None and len(frames.buffer) == 0 and messages.opcode is None
    except AttributeError:
        return False


def _poll_idle(clients: list[Client], note: Any, stop: threading.Event, deadline: float) -> None:
    """Read every idle client from one thread with a plain epoll loop (the ``thread`` reader).

    Per message this costs a ``read`` and a header parse (:func:`split_frames`; wsproto only for
    other frames), not a Trio task wake-up, an ``epoll_ctl`` and a scheduler pass: with 500
    clients the task reader needed more time to take in one broadcast than a fast gateway needs
    to send it, so it measured itself. The clients' sockets are touched only by this thread until
    it returns (pongs are written from here too); bytes of an incomplete frame are handed to
    wsproto when it does, so the clients' close handshake continues from a consistent state.
    """
    import select

    poller = select.epoll()
    by_fd: dict[int, tuple[int, Client]] = {}
    raw: dict[int, bytes] = {}  # fd -> incomplete frame bytes, for clients read without wsproto
    for i, c in enumerate(clients):
        fd = c.stream.socket.fileno()
        by_fd[fd] = (i, c)
        poller.register(fd, select.EPOLLIN)
        for msg in list(c.pending):  # frames decoded before the thread took over
            note(i, msg)
        c.pending.clear()
        if _at_frame_boundary(c.ws):
            raw[fd] = b""

    def through_wsproto(fd: int, i: int, c: Client, data: bytes) -> None:
        c.ws.receive_data(data)
        for out in c._absorb():
            try:
                os.write(fd, out)
            except OSError:
                pass
        while c.pending:
            note(i, c.pending.popleft())

    try:
        for _ in range(100_000_000):
            if stop.is_set() or perf() > deadline:
                return
            for fd, _mask in poller.poll(0.05):
                i, c = by_fd[fd]
                try:
                    data = os.read(fd, 262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    c.closed = True
                    continue
                rest = raw.get(fd)
                if rest is None:
                    through_wsproto(fd, i, c, data)
                    continue
                frames, raw[fd] = split_frames(rest + data if rest else data)
                for frame in frames:
                    if frame.__class__ is str:
                        note(i, frame)
                    else:
                        through_wsproto(fd, i, c, frame)  # type: ignore[arg-type]
    finally:
        poller.close()
        for fd, rest in raw.items():
            if rest:
                by_fd[fd][1].ws.receive_data(rest)


async def cmd_hold(args: argparse.Namespace) -> dict[str, Any]:
    """``conns`` idle authenticated connections; on ``go``: broadcast fan-out trials."""
    hard_deadline = perf() + args.time_limit
    t_open = perf()
    clients = await open_many(args.port, args.token, args.conns, perf() + args.connect_timeout)
    open_s = perf() - t_open
    n = len(clients)
    state: dict[str, Any] = {"marker": None, "arrivals": [0.0] * n, "got": 0, "done": trio.Event()}
    stray = {"frames": 0}

    trials: list[dict[str, Any]] = []
    cpu_result: dict[str, Any] = {}
    stop = threading.Event()
    token = trio.lowlevel.current_trio_token()

    def note(i: int, msg: str) -> None:
        """A whole message for idle client ``i`` (called by the task or the thread reader)."""
        stray["frames"] += 1
        marker = state["marker"]
        if marker is not None and marker in msg and '"presence"' in msg:
            arrivals = state["arrivals"]
            if arrivals[i] == 0.0:
                arrivals[i] = perf()
                state["got"] += 1
                if state["got"] >= n:
                    done = state["done"]
                    if args.reader == "thread":
                        trio.from_thread.run_sync(done.set, trio_token=token)
                    else:
                        done.set()

    async def reader(i: int, c: Client) -> None:
        # The ``tasks`` reader: one task per idle client; answers pings, hands messages to note.
        for _ in range(10_000_000):
            try:
                msg = await c.recv()
            except WSClosed:
                return
            note(i, msg)

    try:
        async with trio.open_nursery() as nursery:
            if args.reader == "thread":
                nursery.start_soon(partial(trio.to_thread.run_sync, _poll_idle, clients, note, stop, hard_deadline))
            else:
                for i, c in enumerate(clients):
                    nursery.start_soon(reader, i, c)
            print("READY " + json.dumps({"conns": n, "connect_s": round(open_s, 3)}), flush=True)
            line = (await _read_line(hard_deadline)).strip()
            if line == "go" and args.trials > 0:
                sender = await handshake(args.port, args.token)
                cpu = CpuWindow(args.watch_pid)
                cpu.start()
                try:
                    for k in range(args.trials):
                        await trio.sleep(args.gap)
                        marker = f"bench-fanout-{os.getpid()}-{k}-{time.time_ns()}"
                        state.update(marker=marker, arrivals=[0.0] * n, got=0, done=trio.Event())
                        text = json.dumps(
                            {"type": "req", "id": f"s{k}", "method": "system-event", "params": {"text": marker}},
                            separators=(",", ":"),
                        )
                        f: Frame | None = None
                        t_ack: float | None = None
                        t0 = perf()
                        with trio.move_on_after(args.trial_timeout):
                            f = await sender.request(f"s{k}", text)
                            t_ack = perf()
                            await state["done"].wait()
                        got = state["got"]
                        t_all = max(state["arrivals"]) if got >= n else None
                        first = min((a for a in state["arrivals"] if a), default=None)
                        state["marker"] = None
                        trials.append(
                            {
                                "ok": bool(f is not None and f.ok),
                                "ack_ms": None if t_ack is None else round((t_ack - t0) * 1000, 3),
                                "received": got,
                                "first_ms": None if first is None else round((first - t0) * 1000, 3),
                                "all_ms": None if t_all is None else round((t_all - t0) * 1000, 3),
                            }
                        )
                finally:
                    cpu_result = cpu.stop()
                    await sender.aclose()
            stop.set()  # the thread reader returns within one 50 ms poll
            if args.reader != "thread":
                nursery.cancel_scope.cancel()
    finally:
        await close_many(clients, timeout=10.0)
    done = sorted(t["all_ms"] for t in trials if t["all_ms"] is not None)
    return {
        "kind": "hold",
        "conns": n,
        "connect_s": round(open_s, 3),
        "trials": trials,
        "fanout_median_ms": done[len(done) // 2] if len(done) == len(trials) and done else None,
        "reader": args.reader,
        "frames_seen": stray["frames"],
        **cpu_result,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadclient", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("handshake", "health", "hold"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--token", default="T")
        s.add_argument("--time-limit", type=float, default=120.0, help="hard bound on the whole run (s)")
        s.add_argument("--connect-timeout", type=float, default=60.0, help="bound on opening all connections (s)")
        s.add_argument("--watch-pid", type=int, default=0, help="report the CPU use of this process tree")
        if name == "handshake":
            s.add_argument("--count", type=int, default=200)
            s.add_argument("--warmup-count", type=int, default=10)
        elif name == "health":
            s.add_argument("--conns", type=int, default=1)
            s.add_argument("--warmup", type=float, default=1.0)
            s.add_argument("--duration", type=float, default=5.0)
        else:
            s.add_argument("--conns", type=int, default=500)
            s.add_argument("--trials", type=int, default=5)
            s.add_argument("--gap", type=float, default=0.3, help="pause before each trial (s)")
            s.add_argument("--trial-timeout", type=float, default=15.0)
            s.add_argument(
                "--reader",
                choices=("thread", "tasks"),
                default="thread",
                help="how the idle clients are read: one epoll thread (default) or a Trio task each",
            )
    args = p.parse_args(argv)
    if not (0 < args.port < 65536) or args.port == 18789:
        p.error("refusing port: pick a free one (never 18789)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()
    fn = {"handshake": cmd_handshake, "health": cmd_health, "hold": cmd_hold}[args.cmd]

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(args.time_limit):
            return await fn(args)

    result = trio.run(bounded)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
