"""Config hot reload with a running gateway, a real file edit and real clients (issue 4 acceptance).

Each test starts ``gateway run`` from a config file, edits the file, and checks what connected
clients and new clients see. All waits are bounded; processes are killed by pid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio
from gateway_proc import (
    TOKEN,
    Client,
    GatewayProcess,
    connect_frame,
    free_port,
    http_request,
    local_config,
    make_home,
    open_ws,
)


def _edit(home: Path, change: dict) -> None:
    """Rewrite the config with ``change`` merged in (whole-file replace, as an editor would)."""
    path = home / ".openclaw" / "openclaw.json"
    cfg = json.loads(path.read_text())

    def merge(a: dict, b: dict) -> None:
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v

    merge(cfg, change)
    path.write_text(json.dumps(cfg))


def _wait_log(gw: GatewayProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in gw.stdout + gw.stderr:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout}s\n{gw.output()}")


def test_logging_change_keeps_connections(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    client = Client(await open_ws(nursery, port))
                    await client.handshake()
                    _edit(home, {"logging": {"level": "debug"}})
                    await trio.to_thread.run_sync(_wait_log, gw, "config change applied (dynamic reads: logging.level)")
                    res = await client.call("health")
                    assert res["ok"] is True
                    assert not any(e.get("event") == "shutdown" for e in client.events)
                    nursery.cancel_scope.cancel()

        trio.run(main)


def test_invalid_edit_keeps_the_last_good_config(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        (home / ".openclaw" / "openclaw.json").write_text("{ gateway: { port: ")
        _wait_log(gw, "config reload skipped (invalid config)")
        status, _, body = http_request("127.0.0.1", port, "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True

        async def main() -> None:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    client = Client(await open_ws(nursery, port))
                    await client.handshake()  # the old token still works
                    health = (await client.call("health", {"probe": True}))["payload"]
                    assert health["configReload"]["hotReloadStatus"] == "active"
                    assert "Invalid config" in health["configReload"]["lastError"]
                    nursery.cancel_scope.cancel()

        trio.run(main)


def test_token_rotation_closes_old_clients_and_admits_only_the_new_token(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    old = Client(await open_ws(nursery, port))
                    await old.handshake(token=TOKEN)
                    _edit(home, {"gateway": {"auth": {"mode": "token", "token": "rotated-token-9"}}})
                    closed = await old.wait_closed()
                    assert (closed.code, closed.reason) == (4001, "gateway auth changed")
                    refused = Client(await open_ws(nursery, port))
                    await refused.recv()  # challenge
                    await refused.send(connect_frame(TOKEN))
                    answer = await refused.recv()
                    assert answer["ok"] is False and answer["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"
                    fresh = Client(await open_ws(nursery, port))
                    await fresh.handshake(token="rotated-token-9")
                    nursery.cancel_scope.cancel()

        trio.run(main)
        _wait_log(gw, "config hot reload applied (gateway.auth.token)")


def test_port_change_restarts_in_process_on_the_new_port(tmp_path: Path) -> None:
    port, new_port = free_port(), free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        pid = gw.pid

        async def main() -> None:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    client = Client(await open_ws(nursery, port))
                    await client.handshake()
                    _edit(home, {"gateway": {"port": new_port}})
                    closed = await client.wait_closed()
                    assert closed.code == 1012
                    shutdown = [e for e in client.events if e.get("event") == "shutdown"]
                    assert shutdown and shutdown[-1]["payload"]["reason"] == "gateway restarting"
                    nursery.cancel_scope.cancel()

        trio.run(main)
        gw.wait_ready(new_port)
        assert gw.pid == pid and gw.poll() is None
        _wait_log(gw, "config change requires gateway restart (gateway.port)")
