"""Gateway helpers for the Control UI tests: a restartable gateway process with a throwaway HOME,
one-shot RPCs from a CLI-style client, and small page probes."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio
from gateway_proc import Client, GatewayProcess, connect_frame, free_port, make_home, open_ws

TOKEN = "ui-browser-token-0123456789"
ADMIN = ["operator.read", "operator.write", "operator.admin", "operator.pairing"]


class Gateway:
    """A gateway process with a throwaway HOME, restartable on the same port and state."""

    def __init__(self, root: Path, config: dict[str, Any] | None = None) -> None:
        self.root = root
        self.port = free_port()
        gateway = {"mode": "local", "port": self.port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN}}
        cfg = {**(config or {}), "gateway": {**gateway, **(config or {}).get("gateway", {})}}
        self.home = make_home(root, cfg)
        self.config_path = self.home / ".openclaw" / "openclaw.json"
        self.log_path = root / "gw.log"
        self.runs = 0
        self.proc: GatewayProcess | None = None

    @classmethod
    @contextmanager
    def running(cls, root: Path, config: dict[str, Any] | None = None) -> Iterator[Gateway]:
        """A started gateway, killed (by process group) when the block ends."""
        gateway = cls(root, config).start()
        try:
            yield gateway
        finally:
            gateway.kill()

    def start(self) -> Gateway:
        self.runs += 1
        self.proc = GatewayProcess(self.root, self.home, name=f"gw{self.runs}").start()
        self.proc.wait_ready(self.port, timeout=20)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=20) == 0
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())


def rpc(port: int, method: str, params: Any = None, *, token: str = TOKEN) -> dict[str, Any]:
    """One request from a CLI-style client (token, no device: keeps its scopes on loopback)."""

    async def main() -> dict[str, Any]:
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                ws = await open_ws(nursery, port)
                client = Client(ws)
                await client.recv()
                await client.send(connect_frame(token, ADMIN))
                hello = await client.recv()
                while hello.get("type") != "res":
                    hello = await client.recv()
                assert hello["ok"], hello
                res = await client.call(method, params)
                await ws.aclose()
                nursery.cancel_scope.cancel()
                return res

    return trio.run(main)


def refused_handshake(port: int) -> None:
    """A connect with a wrong token: the gateway logs a warning line for it."""

    async def main() -> None:
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                ws = await open_ws(nursery, port)
                client = Client(ws)
                await client.recv()
                await client.send(connect_frame("wrong-token", ADMIN))
                await client.wait_closed()
                nursery.cancel_scope.cancel()

    trio.run(main)


def text(page: Any, selector: str) -> str:
    return (page.locator(selector).first.text_content() or "").strip()


def ui_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        "() => { const c = window.__openclawControl && window.__openclawControl.conn;"
        " return c ? {state: c.state, connects: c.connects, attempt: c.attempt, refusal: c.refusal} : null; }"
    )


def wait_connected(page: Any, timeout: float = 20) -> None:
    page.wait_for_function(
        "() => document.querySelector('#conn-state') && document.querySelector('#conn-state').dataset.state === 'connected'",
        timeout=timeout * 1000,
    )
