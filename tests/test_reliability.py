"""The bounded reliability suite (issue 10 item 11): our gateway as a process, pushed the way a
hostile page, a slow client or a full disk would push it.

* the configured failed-auth policy through real connections, hot reload included;
* stalled HTTP bodies against a gateway limited to 1,024 file descriptors;
* one client pipelining 2,000 ``logs.tail`` without reading: the in-flight cap, the slow-consumer
  close and an RSS bound;
* SIGTERM with requests in flight, and how fast the process is gone;
* storage failures (a full tmpfs, a read-only bind mount) in a private mount namespace.

Every loop is bounded in count and time, every process is ours and killed by pid; bounds on time
are generous ceilings the issue asks for, never measurements of speed (those are in bench/).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from gateway_proc import TOKEN, GatewayProcess, connected, free_port, local_config, make_home
from rawws import connect_frame, device_connect, session
from test_gateway_reload import _edit, _wait_log
from wsproto import ConnectionType, WSConnection
from wsproto.events import Message, Request, TextMessage


def _summary(port: int, token: str, source: str) -> str:
    out = session(port, connect=connect_frame(token), source=source, until=lambda o: o.hello is not None, timeout=10)
    if out.hello is not None:
        return "admitted"
    err = out.connect_error or {}
    return (err.get("details") or {}).get("authReason", f"no answer {out.close}")


def test_rate_limit_policy_from_config_and_hot_reload(tmp_path: Path) -> None:
    """``exemptLoopback: false`` locks a loopback peer out after ``maxAttempts`` failures; a hot
    edit of ``maxAttempts`` applies to the next failures (issue 10 item 1)."""
    port = free_port()
    limit = {"exemptLoopback": False, "maxAttempts": 4}
    home = make_home(tmp_path, local_config(port=port, auth={"mode": "token", "token": TOKEN, "rateLimit": limit}))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        got = [_summary(port, "wrong", "127.0.0.21") for _ in range(5)] + [_summary(port, TOKEN, "127.0.0.21")]
        assert got == ["token_mismatch"] * 4 + ["rate_limited"] * 2
        assert _summary(port, TOKEN, "127.0.0.22") == "admitted"  # per address

        _edit(home, {"gateway": {"auth": {"rateLimit": {"maxAttempts": 2}}}})
        _wait_log(gw, "config hot reload applied (gateway.auth.rateLimit)")
        got = [_summary(port, "wrong", "127.0.0.23") for _ in range(3)]
        assert got == ["token_mismatch"] * 2 + ["rate_limited"]
        # The lockout taken before the edit is kept (limiter state survives a hot reload).
        assert _summary(port, TOKEN, "127.0.0.21") == "rate_limited"
        records = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
        assert all("Traceback" not in str(r) for r in records)


# --------------------------------------------------------------------------- item 5: bounded memory


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Stuck:
    """A WebSocket client that authenticates and then never reads again (tiny receive buffer)."""

    def __init__(self, port: int, scopes: list[str]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target="/")))
        deadline = time.monotonic() + 10
        text = ""  # wsproto hands a message over in pieces as they arrive (a 4 KB receive buffer)
        while time.monotonic() < deadline:
            self.ws.receive_data(self.sock.recv(65536))
            for ev in self.ws.events():
                if isinstance(ev, TextMessage):
                    text += ev.data
                    if not ev.message_finished:
                        continue
                    frame, text = json.loads(text), ""
                    if frame.get("event") == "connect.challenge":
                        self.send(connect_frame(TOKEN, scopes=scopes))
                    elif frame.get("id") == "c1":
                        assert frame["ok"], frame
                        return
        raise AssertionError("no hello-ok")

    def send(self, frame: dict) -> None:
        self.sock.sendall(self.ws.send(Message(data=json.dumps(frame))))

    def send_many(self, frames: list[dict]) -> None:
        self.sock.setblocking(True)
        self.sock.settimeout(30)
        self.sock.sendall(b"".join(self.ws.send(Message(data=json.dumps(f))) for f in frames))

    def wait_hangup(self, timeout: float) -> float | None:
        """Seconds until the server closed the connection (without reading anything), or None."""
        poller = select.poll()
        poller.register(self.sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if poller.poll(100):
                return time.monotonic() - start
        return None

    def close(self) -> None:
        self.sock.close()


def test_pipelined_logs_tail_without_reading_is_bounded(tmp_path: Path) -> None:
    """2,000 ``logs.tail`` (1 MB each) pipelined by a client that never reads: past 257 in flight
    the answer is "server is busy", queued answers count toward maxBufferedBytes (50 MiB), the
    client is closed 1008 slow consumer, and the gateway's peak RSS grows by less than 50 MiB plus
    a few MiB (issue 10 item 5; the margin is the allocator's, see below)."""
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home, "--verbose") as gw:
        gw.wait_ready(port)

        # ~2 MB of this gateway's own records: copies of one of its lines (same owner), padded.
        log_path = tmp_path / "gw.log"
        own = json.loads(log_path.read_text(encoding="utf-8").splitlines()[-1])
        with log_path.open("a", encoding="utf-8") as fh:
            for i in range(500):
                fh.write(json.dumps({**own, "message": f"filler {i} " + "x" * 4000}) + "\n")

        async def fill_log() -> None:  # and warm up: the heap and the log readers reach their steady size
            async with connected(port) as client:
                for _ in range(100):
                    res = await client.call("logs.tail", {"maxBytes": 1_000_000})
                    assert len(json.dumps(res["payload"]["lines"])) > 900_000

        trio.run(fill_log)
        if not _reset_peak_rss(gw.pid):
            pytest.skip("cannot reset the peak RSS of the gateway (/proc/<pid>/clear_refs)")
        before_kb = _status_kb(gw.pid, "VmRSS")
        stuck = _Stuck(port, ["operator.read"])
        try:
            stuck.send_many(
                [
                    {"type": "req", "id": f"t{i}", "method": "logs.tail", "params": {"maxBytes": 1_000_000}}
                    for i in range(2000)
                ]
            )
            closed_after = stuck.wait_hangup(timeout=30)
        finally:
            stuck.close()
        assert closed_after is not None, "the slow consumer was never closed"
        peak_kb = _status_kb(gw.pid, "VmHWM")
        growth_mib = (peak_kb - before_kb) / 1024
        print(f"slow consumer closed {closed_after:.2f}s after its last send; peak RSS growth {growth_mib:.1f} MiB")
        # Above the 50 MiB queue: one page being read and one being encoded, and glibc's arenas.
        # Where a worker thread's reads land decides the rest: 52-54 MiB in most runs, up to 59.2
        # on a loaded machine (1 run in 4-8 there); with MALLOC_ARENA_MAX=1 the growth is 3-7 MiB
        # (the queue reuses the warm-up's freed heap). A queue allowed 64 MiB would fail this.
        assert growth_mib < 50 + 12, f"peak RSS grew by {growth_mib:.1f} MiB"
        _wait_log(gw, "closing slow consumer")

        async def still_serving() -> None:
            async with connected(port) as client:
                assert (await client.call("health"))["ok"] is True

        trio.run(still_serving)


# --------------------------------------------------------------------------- item 3: stalled sockets


def _stalled_body(port: int, source: str) -> socket.socket:
    """A socket that sent a full request head announcing a body, then nothing. The request is one
    the gateway must read the body of (an authorized ``/tools/invoke``): a request it can answer
    at once (a 404, a 401) is answered and closed after a short linger, so it never stalls."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(
        f"POST /tools/invoke HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\nabc".encode()
    )
    return s


def _get(port: int, path: str, source: str = "127.0.0.1", timeout: float = 10.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _eventually(check: object, timeout: float = 10.0) -> bool:
    """``check()`` true within ``timeout`` (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.fixture
def many_fds():
    """This test process needs more than 1,100 sockets at once."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 1400:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_stalled_bodies_do_not_exhaust_file_descriptors(tmp_path: Path, many_fds: None) -> None:
    """1,100 sockets stalled in a request body (25 per source address, under the per-IP cap)
    against a gateway limited to 1,024 file descriptors: a new WebSocket client and GET /readyz
    are still served, and fd exhaustion is logged once, with no traceback (issue 10 item 3)."""
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home, nofile=1024) as gw:
        gw.wait_ready(port)
        held: list[socket.socket] = []
        try:
            for i in range(1100):
                try:
                    held.append(_stalled_body(port, f"127.0.0.{10 + i // 25}"))
                except OSError:
                    pass  # refused or dropped at the budget: that is the point
            assert len(held) > 900
            # Served, at the latest once the flood's sockets are old enough to be dropped for it
            # (EVICT_MIN_AGE_S); the loop is bounded, the first try usually succeeds.
            assert _eventually(lambda: _get(port, "/readyz")[0] == 200)
            assert _eventually(
                lambda: (
                    session(port, connect=connect_frame(TOKEN), until=lambda o: o.hello is not None).hello is not None
                )
            )
        finally:
            for s in held:
                s.close()
        out_text = gw.stdout + gw.stderr
        assert "Traceback" not in out_text and "Too many open files" not in out_text, out_text[-3000:]
        budget_lines = [ln for ln in out_text.splitlines() if "file descriptor budget reached" in ln]
        assert len(budget_lines) == 1, budget_lines
        assert _get(port, "/readyz")[0] == 200


def test_stalled_http_sockets_count_toward_the_per_ip_cap(tmp_path: Path) -> None:
    """Past the per-IP pre-auth cap a request is answered 503 (liveness excepted); another
    address is not affected; the slots come back when the stalled sockets go."""
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home, env={"OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP": "4"}) as gw:
        gw.wait_ready(port)
        held = [_stalled_body(port, "127.0.0.44") for _ in range(4)]
        try:
            status, body = _get(port, "/readyz", source="127.0.0.44")
            assert (status, body) == (503, b"Too many unauthenticated sockets")
            assert _get(port, "/healthz", source="127.0.0.44")[0] == 200
            assert _get(port, "/readyz", source="127.0.0.45")[0] == 200
            refused = session(port, source="127.0.0.44", connect=connect_frame(TOKEN), timeout=5)
            assert (refused.status, refused.body) == (503, b"Too many unauthenticated sockets")
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 10
        while _get(port, "/readyz", source="127.0.0.44")[0] != 200:
            assert time.monotonic() < deadline, "slots were not released"
            time.sleep(0.05)


# --------------------------------------------------------------------------- item 8: SIGTERM drains


def _wait_exit_after(gw: GatewayProcess, text: str, timeout: float) -> float:
    """Seconds from ``text`` appearing on the console to the process being gone (polled)."""
    deadline = time.monotonic() + timeout
    seen: float | None = None
    while time.monotonic() < deadline:
        if seen is None and text in gw.stdout:
            seen = time.monotonic()
        if gw.poll() is not None:
            if seen is None and text in gw.stdout:
                seen = time.monotonic()
            assert seen is not None, gw.output()
            return time.monotonic() - seen
        time.sleep(0.01)
    raise AssertionError(f"gateway still running {timeout}s later\n{gw.output()}")


def _sigterm_during_agent_wait(tmp_path: Path, timeout_ms: int, after: Any) -> GatewayProcess:
    """A gateway with one client waiting in ``agent.wait`` (``timeout_ms``) when it gets SIGTERM;
    ``after(client)`` then reads what follows. Returns the (stopping) process."""
    import signal

    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    gw = GatewayProcess(tmp_path, home).start()
    try:
        gw.wait_ready(port)

        async def main() -> None:
            async with connected(port) as client:
                params = {"runId": "r", "timeoutMs": timeout_ms}
                await client.send({"type": "req", "id": "w1", "method": "agent.wait", "params": params})
                await trio.sleep(0.3)
                gw.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    await after(client)

        trio.run(main)
    except BaseException:
        gw.kill()
        raise
    return gw


def test_sigterm_answers_requests_in_flight(tmp_path: Path) -> None:
    """SIGTERM with an ``agent.wait`` in flight: new requests are refused "unavailable during
    gateway restart", the one in flight is answered when it completes, then the shutdown event
    and close 1012; the process is gone within a second of "completed cleanly" (issue 10 item 8)."""
    seen: dict = {}

    async def after(client: Any) -> None:
        await trio.sleep(0.5)
        seen["late"] = await client.call("health")
        frames = []
        while True:
            try:
                frames.append(await client.recv())
            except Exception as exc:  # noqa: BLE001 - the close ends the loop
                seen["close"] = exc
                break
        seen["frames"] = frames

    gw = _sigterm_during_agent_wait(tmp_path, 3000, after)
    try:
        late = seen["late"]
        assert late["ok"] is False and late["error"]["message"] == "health unavailable during gateway restart"
        assert late["error"]["details"] == {"method": "health", "reason": "gateway-restarting", "phase": "accepting"}
        kinds = [(f.get("type"), f.get("id") or f.get("event")) for f in seen["frames"]]
        assert kinds == [("res", "w1"), ("event", "shutdown")], kinds
        assert seen["frames"][0]["payload"] == {"runId": "r", "status": "timeout"}
        assert (seen["close"].code, seen["close"].reason) == (1012, "service restart")
        assert _wait_exit_after(gw, "completed cleanly", timeout=10) < 1.0
        assert gw.poll() == 0
        assert "draining active work before stop" in gw.stdout
    finally:
        gw.kill()


def test_sigterm_fails_what_outlives_the_drain_budget(tmp_path: Path) -> None:
    """A request that would outlive the 10 s drain budget is answered UNAVAILABLE at the budget,
    before the shutdown event; nothing is left unanswered."""
    seen: dict = {}

    async def after(client: Any) -> None:
        seen["res"] = await client.recv()
        seen["next"] = await client.recv()

    gw = _sigterm_during_agent_wait(tmp_path, 60000, after)
    try:
        err = seen["res"]["error"]
        assert seen["res"]["id"] == "w1" and err["code"] == "UNAVAILABLE" and err["retryable"] is True
        assert err["message"] == "agent.wait interrupted: gateway stopping"
        assert seen["next"]["event"] == "shutdown"
        assert gw.wait(timeout=15) == 0
        assert "1 request(s) still in flight after the drain budget" in gw.stdout + gw.stderr
    finally:
        gw.kill()


def test_sigint_with_nothing_to_drain_exits_within_a_second(tmp_path: Path) -> None:
    """Ctrl-C on a foreground gateway with no clients: gone within 1 s (issue 9 item 6); it took
    about 2-4 s while the config watcher's thread waited for its poll timeout."""
    import signal

    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    gw = GatewayProcess(tmp_path, home).start()
    try:
        gw.wait_ready(port)
        time.sleep(0.5)  # past start-up: the watcher is in its poll
        start = time.monotonic()
        gw.send_signal(signal.SIGINT)
        assert gw.wait(timeout=10) == 0
        assert time.monotonic() - start < 1.0, gw.output()
    finally:
        gw.kill()


# --------------------------------------------------------------------------- item 7: storage failures


def _can_mount() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_full_and_read_only_storage_is_answered(tmp_path: Path) -> None:
    """The devices dir on a full tmpfs and the config dir on a read-only bind mount, in a private
    mount namespace: a pairing connect is answered UNAVAILABLE (close 1013), config.set is answered
    without a host path, the cause is logged once, the gateway keeps serving, and both recover
    when space returns / the mount is writable again (issue 10 item 7)."""
    if not _can_mount():
        pytest.skip("no permission to mount in a private mount namespace (unshare -m)")
    port = free_port()
    home = make_home(tmp_path, None)
    state = home / ".openclaw"
    (state / "devices").mkdir(parents=True)
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    cfg = local_config(port=port)
    cfg["logging"] = {"file": str(tmp_path / "gw.log")}
    (cfg_dir / "openclaw.json").write_text(json.dumps(cfg))
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {state / 'devices'} && "
        f'mount --bind {cfg_dir} {cfg_dir} && mount -o remount,bind,ro {cfg_dir} && exec "$@"'
    )
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    env = {"OPENCLAW_CONFIG_PATH": str(cfg_dir / "openclaw.json")}
    with GatewayProcess(tmp_path, home, env=env, wrap=wrap) as gw:
        gw.wait_ready(port)
        inside = Path(f"/proc/{gw.pid}/root") / str(state / "devices").lstrip("/") / "filler"
        fd = os.open(inside, os.O_WRONLY | os.O_CREAT)  # fill the tmpfs, seen from the gateway's namespace
        try:
            for _ in range(1024):
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        for attempt in range(2):
            out = session(port, connect=device_connect(bytes([7]) * 32), timeout=10)
            err = out.connect_error
            assert err is not None and err["code"] == "UNAVAILABLE" and err["retryable"] is True, (attempt, out)
            assert err["message"] == "gateway storage unavailable; retry later"
            assert out.close == (1013, "gateway storage unavailable")
        assert session(port, connect=connect_frame(TOKEN), until=lambda o: o.hello is not None).hello is not None

        async def config_set() -> dict:
            async with connected(port) as client:
                current = await client.call("config.get")
                raw = json.dumps({**cfg, "gateway": {**cfg["gateway"], "mode": "local"}})
                return await client.call("config.set", {"raw": raw, "baseHash": current["payload"]["hash"]})

        res = trio.run(config_set)
        assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE", res
        assert res["error"]["message"] == "config write failed: read-only file system; retry when storage is writable"
        assert str(tmp_path) not in json.dumps(res)

        inside.unlink()  # space returns
        out = session(port, connect=device_connect(bytes([7]) * 32), until=lambda o: o.hello is not None, timeout=10)
        assert out.hello is not None, out
        remount = ["nsenter", "-t", str(gw.pid), "-m", "mount", "-o", "remount,bind,rw", str(cfg_dir)]
        subprocess.run(remount, check=True, timeout=10)
        res = trio.run(config_set)
        assert res["ok"] is True, res

        records = [json.loads(line) for line in (tmp_path / "gw.log").read_text().splitlines()]
        messages = [str(r.get("message", "")) for r in records]
        assert sum("device pairing write failed" in m for m in messages) == 1, messages
        assert sum("config write failed: [Errno 30]" in m for m in messages) == 1
        assert any("device pairing writes succeed again" in m for m in messages)
        assert not any("Traceback" in m or "ExceptionGroup" in m for m in messages)
        assert gw.poll() is None
