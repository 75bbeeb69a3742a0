"""A gateway with a working model provider: ours or the published one, on the §0.1 config.

``agent_gateway(kind, tmp)`` starts tests/upstream.py's scripted upstream and a gateway whose
config is http-openai-observed.md §0.1 (free ports instead of the recorded ones) pointing at it,
and yields ``(port, upstream)``. ``kind`` is ``"ours"`` or ``"reference"`` (the published gateway,
needs ``OPENCLAW_REFERENCE_BIN``): a behaviour test parametrized over both is right only if both pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from gateway_proc import GatewayProcess, free_port, make_home, stop_process
from upstream import ScriptedUpstream

REFERENCE = os.environ.get("OPENCLAW_REFERENCE_BIN")
#: For modules whose every test needs the published gateway (``pytestmark = NEEDS_REFERENCE``).
NEEDS_REFERENCE = pytest.mark.skipif(
    not REFERENCE,
    reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
    "../shared/tools/install-reference.sh and export the launcher path it prints",
)
TOKEN = "agents-e2e-token-0123456789"
KEY = "sk-upstream-test-key"
KINDS = [
    "ours",
    pytest.param(
        "reference",
        marks=pytest.mark.skipif(
            not REFERENCE,
            reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
            "../shared/tools/install-reference.sh and export the launcher path it prints",
        ),
    ),
]


def observed_config(port: int, upstream: str, **extra: Any) -> dict[str, Any]:
    """http-openai-observed.md §0.1, as recorded, with this test's ports."""
    model = {"reasoning": False, "input": ["text"], "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
             "contextWindow": 128000, "maxTokens": 4096}
    cfg: dict[str, Any] = {
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN},
                    "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"mode": "merge", "providers": {"upstream": {
            "baseUrl": upstream, "apiKey": KEY, "api": "openai-completions", "timeoutSeconds": 20,
            "models": [{"id": "scripted", "name": "Scripted", **model, "compat": {"supportsUsageInStreaming": True}},
                       {"id": "scripted-b", "name": "Scripted B", **model}]}}},
        "agents": {"defaults": {"model": {"primary": "upstream/scripted"}, "heartbeat": {"every": "0m"}}},
        "memory": {"search": {"provider": "upstream", "model": "embed-model"}},
    }
    return merged(cfg, extra)


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, nested objects merged key by key (a copy)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _wait_ready(port: int, alive: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), "gateway exited before it was ready"
        assert time.monotonic() < deadline, f"gateway not ready within {timeout} s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


class Running:
    """A started gateway (ours or the published one) and its scripted upstream.

    ``restart()`` stops the gateway gracefully (SIGTERM, as a service manager does) and starts it
    again on the same HOME, config and port: what it persisted is all that survives.
    """

    def __init__(self, kind: str, tmp: Path, port: int, upstream: ScriptedUpstream, cfg: dict[str, Any]) -> None:
        self.kind = kind
        self.tmp = tmp
        self.port = port
        self.upstream = upstream
        self.cfg = cfg
        self.home = make_home(tmp, cfg) if kind == "ours" else tmp / "home"
        self.process: GatewayProcess | None = None
        self._reference: contextlib.AbstractContextManager[Any] | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK client takes as ``base_url``."""
        return f"{self.url}/v1"

    def start(self) -> None:
        self._starts += 1
        if self.kind == "reference":
            self._reference = reference_gateway(self.tmp, self.cfg, self.port)
            self._reference.__enter__()
            return
        name = "gw" if self._starts == 1 else f"gw{self._starts}"
        self.process = GatewayProcess(self.tmp, self.home, name=name).start()
        self.process.wait_ready(self.port, timeout=20)

    def restart(self) -> None:
        if self.kind == "reference":
            self.stop()
        else:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None
        if self._reference is not None:
            ref, self._reference = self._reference, None
            ref.__exit__(None, None, None)


@contextmanager
def running_gateway(kind: str, tmp: Path, **extra: Any) -> Iterator[Running]:
    """:func:`agent_gateway`, yielding a :class:`Running` (``extra``: more config, merged into §0.1's)."""
    with ScriptedUpstream(api_key=KEY, delta_delay_s=0.01) as up:
        port = free_port()
        running = Running(kind, tmp, port, up, observed_config(port, up.base_url, **extra))
        try:
            running.start()
            yield running
        finally:
            running.stop()


@contextmanager
def agent_gateway(kind: str, tmp: Path, **extra: Any) -> Iterator[tuple[int, ScriptedUpstream]]:
    with running_gateway(kind, tmp, **extra) as running:
        yield running.port, running.upstream


@contextmanager
def reference_gateway(tmp: Path, cfg: dict[str, Any], port: int) -> Iterator[tuple[Path, subprocess.Popen]]:
    """The published gateway on ``port`` with ``cfg`` in a HOME under ``tmp`` (log: ``tmp/reference.log``);
    yields ``(home, process)`` once ``/readyz`` answers; stopped on exit."""
    home = tmp / "home"
    (home / ".openclaw").mkdir(parents=True, exist_ok=True)
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps(cfg))
    with open(tmp / "reference.log", "ab") as log:
        proc = subprocess.Popen(
            [REFERENCE or "", "gateway", "run", "--port", str(port)],
            env={**os.environ, "HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            _wait_ready(port, lambda: proc.poll() is None, 120)
            yield home, proc
        finally:
            stop_process(proc)


# --------------------------------------------------------------------------- wire helpers


def sse_data(raw: bytes | str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (``[DONE]`` included)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out


def sse_events(raw: bytes | str) -> list[tuple[str | None, str]]:
    """``(event name or None, data)`` of each SSE frame."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    out: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        data = [line[5:].lstrip(" ") for line in lines if line.startswith("data:")]
        names = [line[6:].strip() for line in lines if line.startswith("event:")]
        if data:
            out.append((names[0] if names else None, "\n".join(data)))
    return out


class RawClient:
    """One HTTP/1.1 exchange over a plain socket, read event by event (h11 as the client), the way
    ``curl -N`` sees it: the head, then each piece of the body as it arrives. Every read is bounded."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)
        self.response: h11.Response | None = None
        self.body = b""
        self.ended = False

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             *, token: str | None = TOKEN, declared: int | None = None) -> None:
        """Send the request; ``declared`` announces another Content-Length and sends only the head."""
        hdrs = [("host", "127.0.0.1"), ("content-type", "application/json")]
        if token is not None:
            hdrs.append(("authorization", f"Bearer {token}"))
        hdrs += list((headers or {}).items())
        hdrs.append(("content-length", str(len(body) if declared is None else declared)))
        out = self.conn.send(h11.Request(method=method, target=path, headers=hdrs))
        if declared is None:
            out += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        self.sock.sendall(out)

    def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.Response):
                    self.response = event
                elif isinstance(event, h11.Data):
                    self.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    self.ended = True
                return event
            data = self.sock.recv(65536)
            self.conn.receive_data(data)

    def head(self) -> h11.Response:
        while self.response is None:
            event = self.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
        return self.response

    def headers(self) -> dict[str, str]:
        assert self.response is not None
        return {k.decode().lower(): v.decode() for k, v in self.response.headers}

    def read_until(self, predicate: Any) -> bytes:
        """Read body pieces until ``predicate(body so far)`` holds or the body ends; the body so far."""
        self.head()
        while not predicate(self.body) and not self.ended:
            self.next_event()
        return self.body

    def read_all(self) -> bytes:
        return self.read_until(lambda _: False)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
