"""Admission guards of the gateway process: the per-IP pre-auth socket cap and ``--force``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import trio
from gateway_proc import GatewayProcess, child_env, free_port, local_config, make_home
from trio_websocket import HandshakeError, open_websocket_url


def test_preauth_socket_cap_per_ip(tmp_path: Path) -> None:
    """Unauthenticated sockets beyond the per-IP cap get HTTP 503; admitted ones free their slot."""
    port = free_port()
    home = make_home(tmp_path, local_config())
    env = {"OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP": "3"}
    with GatewayProcess(tmp_path, home, "--port", str(port), env=env) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            url = f"ws://127.0.0.1:{port}"
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    opened = trio.Event()
                    count = 0

                    async def hold() -> None:
                        nonlocal count
                        # wait_ready's own probe socket may hold a slot for a moment after it closed
                        for _ in range(50):
                            try:
                                async with open_websocket_url(url) as ws:
                                    await ws.get_message()  # the challenge: this socket is pre-auth now
                                    count += 1
                                    if count == 3:
                                        opened.set()
                                    await trio.sleep_forever()
                            except HandshakeError:
                                await trio.sleep(0.05)
                        raise AssertionError("three pre-auth sockets were never held at once")

                    for _ in range(3):
                        nursery.start_soon(hold)
                    await opened.wait()
                    try:
                        async with open_websocket_url(url):
                            raise AssertionError("the 4th pre-auth socket was admitted")
                    except HandshakeError as exc:
                        assert getattr(exc, "status_code", None) == 503
                        assert b"Too many unauthenticated sockets" in (getattr(exc, "body", b"") or b"")
                    nursery.cancel_scope.cancel()
                # The slots are released when those sockets close: a new one is admitted again.
                for _ in range(50):
                    try:
                        async with open_websocket_url(url) as ws:
                            await ws.get_message()
                            return
                    except HandshakeError:
                        await trio.sleep(0.05)
                raise AssertionError("slots were not released")

        trio.run(main)


def test_force_frees_the_port(tmp_path: Path) -> None:
    """``--force`` stops a (non-gateway) listener on the port, says which pid, then serves there."""
    port = free_port()
    squatter = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=child_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        home = make_home(tmp_path, local_config())
        with GatewayProcess(tmp_path, home, "--port", str(port), "--force") as gw:
            gw.wait_ready(port, timeout=15)
            assert squatter.wait(timeout=5) is not None
            assert f"force: killed pid {squatter.pid}" in gw.stderr
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait(timeout=5)
