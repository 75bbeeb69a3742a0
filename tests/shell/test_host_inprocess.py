"""The Trio host in process: sessions over an in-memory transport, on Trio's MockClock.

No sockets and no wall-clock waits: the MockClock jumps virtual time forward whenever every task
has been blocked for a moment, so a 30 s ``agent.wait`` or a 30 s tick completes at once. (The
threshold is a real interval, not 0, so that work in a worker thread finishes before virtual time
races ahead.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import trio
import trio.testing

from gateway_core import Admission, PeerInfo
from gateway_trio.app import Gateway
from gateway_trio.filelog import FileLog
from gateway_trio.session import Session
from gateway_trio.settings import GatewaySettings, Paths

ADMIN = ["operator.read", "operator.write", "operator.admin"]
#: Real seconds every task must be blocked before virtual time jumps. Large enough that a worker
#: thread (the store opening, a file effect) on a loaded machine finishes first; a jump costs this.
AUTOJUMP_S = 1.0


class MemoryTransport:
    """Collects what a session sends; the test reads it back as parsed frames. Pings are answered."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.arrived = trio.Event()

    async def send_batch(self, items: list[str | None]) -> None:
        for item in items:
            if item is not None:
                self.frames.append(json.loads(item))
            elif self.session is not None:
                self.session.feed_pong()
        self.arrived.set()
        self.arrived = trio.Event()

    async def send_close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.arrived.set()

    def abort(self) -> None:
        self.closed = (1006, "")
        self.arrived.set()


class InProcessClient:
    def __init__(self, gw: Gateway, nursery: trio.Nursery) -> None:
        self.transport = MemoryTransport()
        self.session = Session(gw, PeerInfo(client_ip="127.0.0.1"), self.transport)
        self.transport.session = self.session
        self.closed = trio.Event()
        nursery.start_soon(self._run)

    async def _run(self) -> None:
        await self.session.run(lambda s: self.closed.wait())

    async def wait_for(self, pred: Any) -> dict[str, Any]:
        while True:
            for f in self.transport.frames:
                if pred(f):
                    self.transport.frames.remove(f)
                    return f
            await self.transport.arrived.wait()

    async def call(self, method: str, params: Any = None, rid: str | None = None) -> dict[str, Any]:
        rid = rid or f"r-{method}"
        frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        self.session.feed_text(json.dumps(frame))
        return await self.wait_for(lambda f: f.get("type") == "res" and f.get("id") == rid)

    async def handshake(self) -> None:
        await self.wait_for(lambda f: f.get("event") == "connect.challenge")
        params = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
            "role": "operator",
            "scopes": ADMIN,
            "auth": {"token": "T"},
        }
        hello = await self.call("connect", params, "hello")
        assert hello["ok"], hello


def _gateway(tmp_path: Path) -> Gateway:
    paths = Paths(None, tmp_path, tmp_path / "openclaw.json")
    settings = GatewaySettings(paths, None, 1, "--port", "loopback", ["127.0.0.1"], "token", "T", None)
    return Gateway(settings, FileLog(tmp_path / "gw.log", console=io.StringIO(), console_enabled=False))


def _run(tmp_path: Path, body: Any) -> None:
    async def main() -> None:
        gw = _gateway(tmp_path)
        with trio.fail_after(120):  # virtual seconds under the MockClock
            async with trio.open_nursery() as nursery:
                await nursery.start(gw.serve)
                gw.services.phase = Admission.ACCEPTING  # what run_gateway does once listening
                client = InProcessClient(gw, nursery)
                await client.handshake()
                await body(gw, client)
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=AUTOJUMP_S))


def test_agent_wait_for_an_unknown_run_waits_its_timeout_on_virtual_time(tmp_path: Path) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        t0 = trio.current_time()
        res = await client.call("agent.wait", {"runId": "nope", "timeoutMs": 30_000})
        assert res["payload"] == {"runId": "nope", "status": "timeout"}
        assert 30 <= trio.current_time() - t0 < 31

    _run(tmp_path, body)


def test_agent_two_stage_and_wait_through_the_host(tmp_path: Path) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        first = await client.call("agent", {"message": "hi", "idempotencyKey": "run-1"}, "a")
        assert first["payload"]["status"] == "accepted"
        final = await client.wait_for(lambda f: f.get("type") == "res" and f.get("id") == "a")
        assert final["ok"] is True and final["payload"]["status"] == "ok"
        text = final["payload"]["result"]["payloads"][0]["text"]
        assert '"hi"' in text and "No model provider is configured" in text  # the offline default
        waited = await client.call("agent.wait", {"runId": "run-1", "timeoutMs": 1000})
        assert waited["payload"]["status"] == "ok"

    _run(tmp_path, body)


def test_ticks_come_from_the_app_schedule(tmp_path: Path) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        t0 = trio.current_time()
        tick = await client.wait_for(lambda f: f.get("event") == "tick")
        assert 29 <= trio.current_time() - t0 <= 30.5
        assert isinstance(tick["payload"]["ts"], int)

    _run(tmp_path, body)


def test_config_writes_happen_off_the_loop_and_land_on_disk(tmp_path: Path) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        res = await client.call("config.set", {"raw": json.dumps({"gateway": {"mode": "local"}})})
        assert res["ok"], res
        assert json.loads((tmp_path / "openclaw.json").read_text()) == {"gateway": {"mode": "local"}}

    _run(tmp_path, body)


def test_a_storage_failure_is_a_clear_answer(tmp_path: Path) -> None:
    async def body(gw: Gateway, client: InProcessClient) -> None:
        (tmp_path / "openclaw.json").mkdir()  # reading a directory fails with EISDIR
        res = await client.call("config.get", {})
        assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
        assert res["error"]["message"] == "config read failed: Is a directory"
        assert str(tmp_path) not in json.dumps(res)

    _run(tmp_path, body)
