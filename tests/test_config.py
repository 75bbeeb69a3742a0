"""The config schema, ``openclaw config …`` and the start-up refusal of an invalid config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gateway_proc import make_home, run_cli

from gateway_core.config import validate_config
from openclaw_cli.app import app


def test_validate_config_names_every_problem() -> None:
    cfg = {
        "gateway": {"mode": "local", "bogus": 1, "port": 70000, "reload": {"mode": "sometimes"}},
        "logging": {"level": "loud"},
        "nope": {},
        "channels": {"anything": {"goes": True}},
    }
    assert [str(i) for i in validate_config(cfg)] == [
        "nope: unknown key",
        "gateway.bogus: unknown key",
        "gateway.port: must be <= 65535",
        "gateway.reload.mode: must be equal to one of the allowed values",
        "logging.level: must be equal to one of the allowed values",
    ]


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"$schema": "https://example/schema.json", "gateway": {"mode": "local", "port": 1, "bind": "lan"}},
        {"gateway": {"auth": {"mode": "token", "token": {"source": "env", "id": "OPENCLAW_TOKEN"}}}},
        {"gateway": {"reload": {"mode": "off"}}},
        {"gateway": {"reload": {"mode": "hot"}}},
        {"gateway": {"reload": {"mode": "restart"}}},
        {"gateway": {"reload": {"mode": "hybrid"}}},
        {"logging": {"level": "debug", "file": "/tmp/x.log", "maxFileBytes": 1000}},
    ],
)
def test_valid_configs(cfg: dict) -> None:
    assert validate_config(cfg) == []


def test_unknown_key_refuses_to_start_with_78(tmp_path: Path) -> None:
    home = make_home(tmp_path, {"gateway": {"mode": "local", "controlUi": {"bogusKey": True}}}, log_file=False)
    out = run_cli(home, "--port", "19999")
    assert out.returncode == 78
    assert "gateway.controlUi.bogusKey: unknown key" in out.stderr


def _run(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("HOME", str(home))
    for var in ("OPENCLAW_STATE_DIR", "OPENCLAW_CONFIG_PATH", "OPENCLAW_HOME"):
        monkeypatch.delenv(var, raising=False)
    rc = app(["config", *args], result_action="return_value")
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_config_cli_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    path = home / ".openclaw" / "openclaw.json"
    assert _run(home, monkeypatch, capsys, "file")[1].strip() == str(path)
    assert _run(home, monkeypatch, capsys, "set", "gateway.mode", "local")[0] == 0
    assert _run(home, monkeypatch, capsys, "set", "gateway.port", "19999")[0] == 0
    assert _run(home, monkeypatch, capsys, "set", "gateway.auth.token", "s3cret-token")[0] == 0
    assert json.loads(path.read_text()) == {
        "gateway": {"mode": "local", "port": 19999, "auth": {"token": "s3cret-token"}}
    }
    rc, out, _ = _run(home, monkeypatch, capsys, "get", "gateway")
    assert rc == 0 and "__OPENCLAW_REDACTED__" in out and "s3cret" not in out
    rc, _, err = _run(home, monkeypatch, capsys, "set", "gateway.port", "70000")
    assert rc == 1 and "gateway.port: must be <= 65535" in err
    assert json.loads(path.read_text())["gateway"]["port"] == 19999  # nothing written
    assert (path.with_name("openclaw.json.bak")).exists()
    assert _run(home, monkeypatch, capsys, "unset", "gateway.port")[0] == 0
    assert "port" not in json.loads(path.read_text())["gateway"]
    rc, out, _ = _run(home, monkeypatch, capsys, "validate", "--json")
    assert rc == 0 and json.loads(out)["valid"] is True
    path.write_text("{gateway: {bogus: 1}}")
    rc, out, _ = _run(home, monkeypatch, capsys, "validate")
    assert rc == 1 and "gateway.bogus: unknown key" in out


def test_config_plan_against_a_running_gateway(tmp_path: Path) -> None:
    """With reload off the edit stays unapplied, so ``config plan`` shows it: port → restart, logging → none."""
    import subprocess
    import sys

    from gateway_proc import GatewayProcess, child_env, free_port, local_config

    port, other = free_port(), free_port()
    cfg = local_config(port=port)
    cfg["gateway"]["reload"] = {"mode": "off"}
    home = make_home(tmp_path, cfg)
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        path = home / ".openclaw" / "openclaw.json"
        edited = json.loads(path.read_text())
        edited["gateway"]["port"] = other
        edited.setdefault("logging", {})["level"] = "debug"
        path.write_text(json.dumps(edited))
        out = subprocess.run(
            [sys.executable, "-m", "openclaw_cli", "config", "plan", "--json"],
            env=child_env(home),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        effects = {c["path"]: c["effect"] for c in doc["changes"]}
        assert effects == {"gateway.port": "restart", "logging.level": "none"}
        assert doc["gateway"] == f"ws://127.0.0.1:{port}"  # the running gateway, not the edited port


def test_rpc_config_write_may_not_add_an_executable(tmp_path: Path) -> None:
    import trio
    from gateway_proc import Client, GatewayProcess, free_port, local_config, open_ws

    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)

        async def main() -> None:
            with trio.fail_after(15):
                async with trio.open_nursery() as nursery:
                    admin = Client(await open_ws(nursery, port))
                    await admin.handshake()
                    current = (await admin.call("config.get", {}))["payload"]
                    cfg = json.loads(current["raw"].replace("__OPENCLAW_REDACTED__", "T0123"))
                    cfg["secrets"] = {"providers": {"evil": {"source": "exec", "command": "/bin/sh"}}}
                    res = await admin.call("config.set", {"raw": json.dumps(cfg), "baseHash": current["hash"]})
                    assert res["ok"] is False
                    assert "may not set executable paths" in res["error"]["message"]
                    bad = await admin.call(
                        "config.set", {"raw": '{"gateway": {"bogus": 1}}', "baseHash": current["hash"]}
                    )
                    assert bad["ok"] is False and "gateway.bogus: unknown key" in bad["error"]["message"]
                    schema = await admin.call("config.schema.lookup", {"path": "gateway.reload.mode"})
                    assert schema["payload"]["schema"]["enum"] == ["hybrid", "hot", "off", "restart"] or set(
                        schema["payload"]["schema"]["enum"]
                    ) == {"off", "hot", "restart", "hybrid"}
                    missing = await admin.call("config.schema.lookup", {"path": "gateway.nope"})
                    assert missing["error"]["message"] == "config schema path not found"
                    nursery.cancel_scope.cancel()

        trio.run(main)


def test_setup_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for var in ("OPENCLAW_STATE_DIR", "OPENCLAW_CONFIG_PATH", "OPENCLAW_HOME", "OPENCLAW_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert app(["setup", "--baseline"], result_action="return_value") == 0
    cfg = json.loads((home / ".openclaw" / "openclaw.json").read_text())
    assert cfg["gateway"]["mode"] == "local" and len(cfg["gateway"]["auth"]["token"]) >= 24
    assert validate_config(cfg) == []
    assert (home / ".openclaw" / "workspace" / "BOOTSTRAP.md").exists()
    assert "Setup complete" in capsys.readouterr().out
