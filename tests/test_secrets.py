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
