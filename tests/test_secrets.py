"""SecretRefs for the gateway credentials (env, file, exec) and ``secrets.reload`` without a restart."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import trio
from gateway_proc import Client, GatewayProcess, free_port, make_home, open_ws

from gateway_trio.secrets import SecretError, resolve_secret


def test_env_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN_T1", "from-env")
    assert resolve_secret({"source": "env", "provider": "default", "id": "GW_TOKEN_T1"}, {}) == "from-env"
    monkeypatch.delenv("GW_TOKEN_T1")
    with pytest.raises(SecretError, match="GW_TOKEN_T1 is not set"):
        resolve_secret({"source": "env", "id": "GW_TOKEN_T1"}, {})


def test_file_ref_json_and_single_value(tmp_path: Path) -> None:
    doc = tmp_path / "secrets.json"
    doc.write_text(json.dumps({"gateway": {"token": "from-file"}}))
    doc.chmod(0o600)
    single = tmp_path / "token.txt"
    single.write_text("single-value\n")
    single.chmod(0o600)
    cfg = {
        "secrets": {
            "providers": {
                "vault": {"source": "file", "path": str(doc)},
                "one": {"source": "file", "path": str(single), "mode": "singleValue"},
            }
        }
    }
    assert resolve_secret({"source": "file", "provider": "vault", "id": "/gateway/token"}, cfg) == "from-file"
    assert resolve_secret({"source": "file", "provider": "one", "id": "value"}, cfg) == "single-value"
    doc.chmod(0o644)
    with pytest.raises(SecretError, match="must be private"):
        resolve_secret({"source": "file", "provider": "vault", "id": "/gateway/token"}, cfg)
    with pytest.raises(SecretError, match="no secrets.providers.nope"):
        resolve_secret({"source": "file", "provider": "nope", "id": "/x"}, cfg)


def test_exec_ref(tmp_path: Path) -> None:
    script = tmp_path / "provider"
    script.write_text(
        f"#!{os.path.realpath(sys.executable)}\nimport json, sys\nreq = json.load(sys.stdin)\n"
        "print(json.dumps({'values': {i: 'exec-' + i for i in req['ids']}}))\n"
    )
    script.chmod(0o700)
    cfg = {"secrets": {"providers": {"cmd": {"source": "exec", "command": str(script)}}}}
    assert resolve_secret({"source": "exec", "provider": "cmd", "id": "tok"}, cfg) == "exec-tok"


def test_secrets_reload_rotates_a_file_secret_without_restart(tmp_path: Path) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("first-token-1")
    os.chmod(secret_file, stat.S_IRUSR | stat.S_IWUSR)
    port = free_port()
    config = {
        "gateway": {
            "mode": "local",
            "port": port,
            "reload": {"mode": "off"},
            "auth": {"mode": "token", "token": {"source": "file", "provider": "tok", "id": "value"}},
        },
        "secrets": {"providers": {"tok": {"source": "file", "path": str(secret_file), "mode": "singleValue"}}},
    }
    home = make_home(tmp_path, config)
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    admin = Client(await open_ws(nursery, port))
                    await admin.handshake(token="first-token-1")
                    secret_file.write_text("second-token-2")
                    res = await admin.call("secrets.reload", {})
                    assert res["ok"] is True and res["payload"] == {"ok": True, "warningCount": 0}
                    closed = await admin.wait_closed()
                    assert (closed.code, closed.reason) == (4001, "gateway auth changed")
                    fresh = Client(await open_ws(nursery, port))
                    await fresh.handshake(token="second-token-2")
                    nursery.cancel_scope.cancel()

        trio.run(main)


def _gated_exec_provider(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """An exec SecretRef provider that answers once ``go`` exists, or after 8 s (within the 10 s
    exec budget) leaving a ``gave-up`` marker; it leaves a ``started`` marker each time it runs."""
    go, started, gave_up = tmp_path / "go", tmp_path / "started", tmp_path / "gave-up"
    script = tmp_path / "gated-provider"
    script.write_text(
        f"#!{os.path.realpath(sys.executable)}\nimport json, pathlib, sys, time\n"
        f"go, started = pathlib.Path({str(go)!r}), pathlib.Path({str(started)!r})\n"
        f"gave_up = pathlib.Path({str(gave_up)!r})\n"
        "req = json.load(sys.stdin)\nstarted.write_text('x')\n"
        "for _ in range(80):\n    if go.exists():\n        break\n    time.sleep(0.1)\n"
        "else:\n    gave_up.write_text('x')\n"
        "print(json.dumps({'values': {i: 'gated-token-1' for i in req['ids']}}))\n"
    )
    script.chmod(0o700)
    go.write_text("x")
    return script, go, started, gave_up


@pytest.mark.parametrize("trigger", ["secrets.reload", "config edit"])
def test_a_slow_exec_secret_does_not_stall_other_clients(tmp_path: Path, trigger: str) -> None:
    """Exec SecretRefs run a command (up to 10 s): a reload resolves them off the event loop, so a
    client's ``health`` is answered while the command still runs."""
    script, go, started, gave_up = _gated_exec_provider(tmp_path)
    port = free_port()
    config = {
        "gateway": {
            "mode": "local",
            "port": port,
            "reload": {"mode": "off" if trigger == "secrets.reload" else "hybrid"},
            "auth": {"mode": "token", "token": {"source": "exec", "provider": "cmd", "id": "tok"}},
        },
        "secrets": {"providers": {"cmd": {"source": "exec", "command": str(script)}}},
    }
    home = make_home(tmp_path, config)
    config_path = next(home.rglob("openclaw.json"))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            with trio.fail_after(25):
                async with trio.open_nursery() as nursery:
                    admin = Client(await open_ws(nursery, port))
                    await admin.handshake(token="gated-token-1")
                    other = Client(await open_ws(nursery, port))
                    await other.handshake(token="gated-token-1")
                    go.unlink()
                    started.unlink()
                    reloaded = trio.Event()

                    async def reload() -> None:
                        if trigger == "secrets.reload":
                            res = await admin.call("secrets.reload", {})
                            assert res["ok"] is True, res
                        reloaded.set()

                    nursery.start_soon(reload)
                    if trigger == "config edit":
                        edited = json.loads(config_path.read_text())
                        edited.setdefault("logging", {})["level"] = "debug"
                        config_path.write_text(json.dumps(edited))
                    for _ in range(200):  # the provider command is running
                        if started.exists():
                            break
                        await trio.sleep(0.05)
                    assert started.exists(), "the exec provider was never run"
                    res = await other.call("health", {})
                    assert res["ok"] is True
                    assert not gave_up.exists()  # answered while the command was still waiting
                    go.write_text("x")
                    if trigger == "secrets.reload":
                        await reloaded.wait()
                    nursery.cancel_scope.cancel()

        trio.run(main)
