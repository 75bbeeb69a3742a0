"""Live mode of the conformance runner, over real loopback WebSockets.

The server here is a test harness, not the gateway: trio-websocket serving the same simulated
application that core mode uses, on the real clock. It proves that the live driver (sockets,
close codes, binary frames, timing) interprets transcripts exactly as core mode does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from conformance.__main__ import CHECKED_LIVE
from conformance.core_driver import SimHost
from conformance.live_driver import open_live_driver
from conformance.runner import Interpreter, load_cases

#: Cases that need gateway control, a non-loopback peer, or long waits stay in core mode (the
#: simulated gateway has a config file holding its token, so the config preconditions hold).
LIVE_CASES = [
    c
    for c in load_cases()
    if all(r in CHECKED_LIVE for r in c.requires) and c.auth == "token" and c.id not in {"56"}  # 56 sends 25 MiB
]


class Harness:
    """Serves the simulator host over WebSockets, advancing its clock with trio's."""

    def __init__(self) -> None:
        self.gw = SimHost("token", "T", "P")
        self.t0 = trio.current_time()
        self.sockets: dict[str, Any] = {}
        self.wake = trio.Event()
        self.n = 0

    def sync(self) -> None:
        self.gw.advance_to(trio.current_time() - self.t0)

    async def flush(self) -> None:
        for name, box in self.gw.inbox.items():
            ws = self.sockets.get(name)
            while box and ws is not None:
                item = box.popleft()
                try:
                    if item.kind == "frame":
                        await ws.send_message(json.dumps(item.frame))
                    else:
                        await ws.aclose(item.code or 1000, item.reason or None)
                except ConnectionClosed:
                    box.clear()

    async def handler(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        self.n += 1
        name = f"c{self.n}"
        self.sockets[name] = ws
        self.sync()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.gw.open(name, {"host": headers.get("host")}, headers.get("origin"))
        await self.flush()
        self.wake.set()
        while True:
            try:
                message = await ws.get_message()
            except ConnectionClosed as exc:
                self.sync()
                conn = self.gw.conns[name]
                conn.receive_closed(exc.reason.code, exc.reason.reason or "", now=self.gw.now)
                self.gw.pump()
                return
            self.sync()
            self.gw.deliver(name, message)
            self.gw.pump()
            await self.flush()
            self.wake.set()

    async def timers(self) -> None:
        while True:
            nxt = self.gw.next_deadline()
            self.wake = trio.Event()
            with trio.move_on_at(self.t0 + nxt if nxt is not None else trio.current_time() + 3600):
                await self.wake.wait()
            self.sync()
            await self.flush()


@pytest.mark.parametrize("case", LIVE_CASES, ids=[c.id for c in LIVE_CASES])
def test_live_driver_against_harness(case: Any) -> None:
    async def main() -> None:
        harness = Harness()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(
                    lambda task_status=trio.TASK_STATUS_IGNORED: serve_websocket(
                        harness.handler,
                        "127.0.0.1",
                        0,
                        ssl_context=None,
                        handler_nursery=nursery,
                        max_message_size=32 * 1024 * 1024,
                        task_status=task_status,
                    )
                )
                nursery.start_soon(harness.timers)
                port = listeners.port
                async with open_live_driver(f"ws://127.0.0.1:{port}") as driver:
                    await Interpreter(case, driver, {"token": "T", "password": "P"}).run()
                nursery.cancel_scope.cancel()

    trio.run(main)
