"""Helpers for tests that run the real gateway process (``python -m openclaw_cli gateway run``).

Everything here is bounded in time and owns what it starts: each gateway runs in its own process
group (``start_new_session=True``) and :meth:`GatewayProcess.kill` ends that group by pid. Only
loopback addresses are used, and ports come from the kernel (bind port 0, close), never 18789.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url, wrap_client_stream

REPO = Path(__file__).resolve().parent.parent
TOKEN = "T0123"
ADMIN_SCOPES = ["operator.read", "operator.write", "operator.admin"]
MAX_MESSAGE = 64 * 1024 * 1024
DEFAULT_PORT = 18789


# --------------------------------------------------------------------------- ports, config, env


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host`` (and that is not the default gateway port)."""
    for _ in range(20):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port != DEFAULT_PORT and ipv6_port_free(port):
            return port
    raise RuntimeError("no free port")


def ipv6_port_free(port: int) -> bool:
    """The gateway binds ::1 as well on loopback: make sure the port is free there too."""
    if not has_ipv6_loopback():
        return True
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        try:
            s.bind(("::1", port))
        except OSError:
            return False
    return True


_V6: bool | None = None


def has_ipv6_loopback() -> bool:
    global _V6
    if _V6 is None:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
            _V6 = True
        except OSError:
            _V6 = False
    return _V6


def make_home(root: Path, config: dict[str, Any] | None = None, *, log_file: bool = True) -> Path:
    """A throwaway HOME; ``config`` (if given) goes to ``.openclaw/openclaw.json``.

    Unless ``log_file`` is False, ``logging.file`` points at ``<root>/gw.log`` so the test can read
    the file log and nothing lands in the shared ``<tmp>/openclaw`` directory.
    """
    home = root / "home"
    (home / ".openclaw").mkdir(parents=True, exist_ok=True)
    if config is not None:
        cfg = json.loads(json.dumps(config))
        if log_file:
            cfg.setdefault("logging", {}).setdefault("file", str(root / "gw.log"))
        (home / ".openclaw" / "openclaw.json").write_text(json.dumps(cfg), encoding="utf-8")
    return home


def local_config(**gateway: Any) -> dict[str, Any]:
    """The usual config: local mode, token auth with :data:`TOKEN`, plus ``gateway`` overrides."""
    return {"gateway": {"mode": "local", "auth": {"mode": "token", "token": TOKEN}, **gateway}}


def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment minus every ``OPENCLAW_*`` variable, with HOME set and mDNS off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["HOME"] = str(home)
    env["OPENCLAW_DISABLE_BONJOUR"] = "1"  # no mDNS from tests (see conftest.py)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def gateway_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "openclaw_cli", "gateway", "run", *args]


def run_cli(
    home: Path, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``gateway run ARGS`` to completion (bounded); the process group is killed on timeout."""
    proc = subprocess.Popen(
        gateway_argv(*args),
        cwd=REPO,
        env=child_env(home, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate(timeout=5)
        raise AssertionError(f"gateway run {args} did not finish within {timeout}s\n{out}\n{err}") from None
    finally:
        _kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def openclaw(
    home: Path, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run our ``openclaw ARGS`` to completion with HOME=``home`` and ``env`` added (bounded; stdin
    is not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "openclaw_cli", *args],
        cwd=REPO,
        env=child_env(home, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL if it does not exit within 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------- the process


class GatewayProcess:
    """One ``gateway run`` child. Console output goes to files (no pipe can fill up)."""

    def __init__(
        self,
        root: Path,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        name: str = "gw",
        nofile: int | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        self.root = root
        self.home = home
        self.args = args
        self.env = env
        #: RLIMIT_NOFILE (soft and hard) for the child, when set.
        self.nofile = nofile
        #: A command the gateway's argv is appended to (e.g. ``unshare ... sh -c '...; exec "$@"'``).
        self.wrap = wrap or []
        self.out_path = root / f"{name}.stdout"
        self.err_path = root / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        #: The port the test expects it on (set by whoever chose it).
        self.port: int = 0

    def start(self) -> GatewayProcess:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*self.wrap, *gateway_argv(*self.args)],
                cwd=REPO,
                env=child_env(self.home, self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=self._limits if self.nofile is not None else None,
            )
        return self

    def _limits(self) -> None:
        import resource

        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace") if self.out_path.exists() else ""

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace") if self.err_path.exists() else ""

    def output(self) -> str:
        return f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def wait_ready(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        """Poll ``GET /healthz`` until it answers 200 (the process must stay alive meanwhile)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            rc = self.poll()
            if rc is not None:
                raise AssertionError(f"gateway exited with {rc} before it was ready\n{self.output()}")
            try:
                status, _, _ = http_request(host, port, "/healthz", timeout=1.0)
                if status == 200:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"gateway not ready on {host}:{port} within {timeout}s ({last})\n{self.output()}")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit status; fails the test (and kills the group) if it takes longer than ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"gateway did not exit within {timeout}s\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# --------------------------------------------------------------------------- HTTP


def http_request(
    host: str, port: int, path: str, method: str = "GET", timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 request: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, body
    finally:
        conn.close()


# --------------------------------------------------------------------------- WebSocket clients


def connect_frame(
    token: str = TOKEN, scopes: list[str] | None = None, rid: str = "c1", client_id: str = "cli"
) -> dict[str, Any]:
    return {
        "type": "req",
        "id": rid,
        "method": "connect",
        "params": {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": client_id, "version": "1", "platform": "linux", "mode": "cli"},
            "scopes": list(ADMIN_SCOPES if scopes is None else scopes),
            "auth": {"token": token},
        },
    }


class Closed(Exception):
    """The server closed the WebSocket: ``code`` and ``reason`` as the client saw them."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class Client:
    """A protocol client over a trio-websocket connection (requests, responses, events)."""

    def __init__(self, ws: WebSocketConnection, *, keep_event: Any = None) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        #: Optional ``frame -> record`` used to store events compactly (large floods).
        self.keep_event = keep_event or (lambda frame: frame)

    async def recv(self) -> dict[str, Any]:
        try:
            message = await self.ws.get_message()
        except ConnectionClosed as exc:
            raise Closed(exc.reason.code, exc.reason.reason) from None
        return json.loads(message)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def handshake(self, token: str = TOKEN, scopes: list[str] | None = None) -> dict[str, Any]:
        challenge = await self.recv()
        assert challenge.get("type") == "event" and challenge.get("event") == "connect.challenge", challenge
        await self.send(connect_frame(token, scopes))
        while True:
            frame = await self.recv()
            if frame.get("type") == "res" and frame.get("id") == "c1":
                break
            self.file_frame(frame)
        assert frame.get("ok") is True, frame
        assert frame["payload"]["type"] == "hello-ok", frame
        self.hello = frame["payload"]
        return frame["payload"]

    def file_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "event":
            self.events.append(self.keep_event(frame))

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send one request and return its ``res`` frame; events that arrive first are filed."""
        rid = f"r{next(self._ids)}"
        frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        await self.send(frame)
        while True:
            got = await self.recv()
            if got.get("type") == "res" and got.get("id") == rid:
                return got
            self.file_frame(got)

    async def wait_closed(self) -> Closed:
        """Read (filing events) until the server closes; returns the close."""
        while True:
            try:
                self.file_frame(await self.recv())
            except Closed as closed:
                return closed


async def open_ws(
    nursery: trio.Nursery,
    port: int,
    host: str = "127.0.0.1",
    *,
    message_queue_size: int = 4096,
    rcvbuf: int | None = None,
) -> WebSocketConnection:
    """A trio-websocket connection to the gateway. With ``rcvbuf`` the TCP socket's SO_RCVBUF is
    set before connecting (so a client that stops reading fills the window quickly)."""
    shown = f"[{host}]" if ":" in host else host
    if rcvbuf is None:
        return await connect_websocket_url(
            nursery,
            f"ws://{shown}:{port}/",
            max_message_size=MAX_MESSAGE,
            message_queue_size=message_queue_size,
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    stream = trio.SocketStream(sock)
    return await wrap_client_stream(
        nursery,
        stream,
        shown,
        "/",
        max_message_size=MAX_MESSAGE,
        message_queue_size=message_queue_size,
    )


@asynccontextmanager
async def connected(
    port: int,
    host: str = "127.0.0.1",
    *,
    scopes: list[str] | None = None,
    keep_event: Any = None,
    message_queue_size: int = 4096,
    rcvbuf: int | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[Client]:
    """An admitted client (hello-ok received). Closing is bounded and never raises."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(timeout):
            ws = await open_ws(nursery, port, host, message_queue_size=message_queue_size, rcvbuf=rcvbuf)
            client = Client(ws, keep_event=keep_event)
            await client.handshake(scopes=scopes)
        try:
            yield client
        finally:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await ws.aclose()
            nursery.cancel_scope.cancel()
