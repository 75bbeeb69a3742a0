"""``openclaw doctor`` finds a stale lock, a port held by another process and a unit whose port
differs from the config, and ``--fix`` repairs the last (and the lock); the service-ownership rules
of §11.2 and ``OPENCLAW_SERVICE_REPAIR_POLICY=external`` keep it from touching what it must not.
The service manager is a fake ``systemctl`` first on PATH (see test_service_e2e)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gateway_proc import _kill_group, free_port, local_config, make_home
from test_service_e2e import cli, fake_systemctl, service_env, systemctl_calls

UNIT = "openclaw-gateway.service"
EXTERNAL_NOTE = (
    "Gateway service is managed externally; skipped service install/start repair. "
    "Start or repair the gateway through your supervisor."
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units and /proc are Linux")


def _checks(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert out.stdout.strip(), out.stderr
    return {c["check"]: c for c in json.loads(out.stdout)["checks"]}


def _setup(
    tmp_path: Path, port: int, config: dict[str, Any] | None = None, **extra: str
) -> tuple[Path, Path, dict[str, str]]:
    home = make_home(tmp_path, config or local_config(port=port))
    bin_dir = tmp_path / "bin"
    fake_systemctl(bin_dir)
    return home, bin_dir, service_env(home, bin_dir, **extra)


def test_doctor_finds_and_fixes(tmp_path: Path) -> None:
    port = free_port()
    home, bin_dir, env = _setup(tmp_path, port)
    assert cli(env, "gateway", "install", "--port", str(port + 1)).returncode == 0  # unit port ≠ config port
    (home / ".openclaw" / "gateway.lock").write_text("99999\n")  # nobody holds it: stale
    squatter = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        found = cli(env, "doctor", "--json")
        assert found.returncode == 1
        checks = _checks(found)
        assert (
            not checks["lock"]["ok"] and checks["lock"]["message"] == "stale gateway lock (pid 99999 is not holding it)"
        )
        assert (
            not checks["port"]["ok"] and f"port {port} is in use by pid {squatter.pid} (" in checks["port"]["message"]
        )
        assert not checks["service"]["ok"]
        assert checks["service"]["message"] == f"{UNIT}: port {port + 1} (config says {port})"
        assert checks["service"]["hint"] == "openclaw doctor --fix rewrites it (or openclaw gateway install --force)"
        human = cli(env, "doctor")
        assert f"✗ service: {UNIT}: port {port + 1} (config says {port})\n" in human.stdout
        assert human.stdout.endswith("3 problem(s) remain. Run openclaw doctor --fix to repair what is safe.\n")

        before = len(systemctl_calls(bin_dir))
        fixed = cli(env, "doctor", "--fix", "--json")
        checks = _checks(fixed)
        unit_path = home / ".config/systemd/user" / UNIT
        assert checks["service"]["fixed"] == (
            f"rewrote {unit_path}; reloaded the user systemd manager; restarted {UNIT}"
        )
        assert checks["lock"]["fixed"] == f"removed stale lock {home / '.openclaw/gateway.lock'}"
        unit = unit_path.read_text()
        assert f"--port {port}\n" in unit and f"OPENCLAW_GATEWAY_PORT={port}\n" in unit
        assert (unit_path.parent / f"{UNIT}.bak").read_text().count(f"--port {port + 1}\n") == 1
        assert not (home / ".openclaw" / "gateway.lock").exists()
        assert [c for c in systemctl_calls(bin_dir)[before:] if "is-enabled" not in c and "show" not in c] == [
            "--user daemon-reload",
            f"--user reset-failed {UNIT}",
            f"--user restart {UNIT}",
        ]
        assert fixed.returncode == 1  # the foreign port holder is reported, never killed by doctor
        assert squatter.poll() is None
        again = _checks(cli(env, "doctor", "--json"))
        assert again["service"] == {"check": "service", "ok": True, "message": f"{UNIT} matches the config"}
    finally:
        _kill_group(squatter)


def test_external_repair_policy_keeps_doctor_diagnostic(tmp_path: Path) -> None:
    port = free_port()
    home, bin_dir, env = _setup(tmp_path, port, OPENCLAW_SERVICE_REPAIR_POLICY="external")
    install_env = {k: v for k, v in env.items() if k != "OPENCLAW_SERVICE_REPAIR_POLICY"}
    assert cli(install_env, "gateway", "install", "--port", str(port + 7)).returncode == 0
    unit_path = home / ".config/systemd/user" / UNIT
    before_text, before_calls = unit_path.read_text(), len(systemctl_calls(bin_dir))
    out = cli(env, "doctor", "--fix", "--json")
    assert out.returncode == 1
    service = _checks(out)["service"]
    assert service == {
        "check": "service",
        "ok": False,
        "message": f"{UNIT}: port {port + 7} (config says {port})",
        "hint": EXTERNAL_NOTE,
    }
    assert unit_path.read_text() == before_text
    assert all("is-enabled" in c or "show" in c for c in systemctl_calls(bin_dir)[before_calls:])


def test_doctor_never_competes_with_a_system_unit(tmp_path: Path) -> None:
    port = free_port()
    home, bin_dir, env = _setup(tmp_path, port)
    assert cli(env, "gateway", "install", "--port", str(port + 3)).returncode == 0
    system_dir = Path(env["OPENCLAW_SYSTEMD_SYSTEM_DIR"])
    system_dir.mkdir()
    system_unit = system_dir / UNIT
    system_unit.write_text(f"[Service]\nUser=u\nExecStart={sys.executable} -m openclaw_cli gateway run --port {port}\n")
    user_unit = home / ".config/systemd/user" / UNIT
    before = user_unit.read_text()

    out = cli(env, "doctor", "--fix", "--json")
    checks = _checks(out)
    assert out.returncode == 1 and user_unit.read_text() == before
    assert checks["service-scope"]["ok"] is False
    assert checks["service-scope"]["message"] == (
        f"both a user-scope ({user_unit}) and a system-scope ({system_unit}) gateway unit are installed; "
        "they will SIGTERM each other in a restart loop"
    )
    assert "fixed" not in checks["service"]
    assert checks["service"]["hint"].startswith(
        f"not repaired: System systemd unit {system_unit} already owns this gateway unit name. Refusing to create "
        "or activate a user systemd unit with the same name because duplicate managers can restart-loop the gateway."
    )

    # a competing install is refused outright; with only the system unit, doctor reports it and installs nothing
    assert cli(env, "gateway", "uninstall").returncode == 0
    refused = cli(env, "gateway", "install", "--force")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"Gateway install blocked: System systemd unit {system_unit} already owns")
    assert not user_unit.exists()
    only_system = _checks(cli(env, "doctor", "--fix", "--json"))
    assert only_system["service"] == {
        "check": "service",
        "ok": True,
        "message": f"{UNIT} matches the config (system unit; doctor will not install a competing user unit)",
    }
    assert "service-scope" not in only_system and not user_unit.exists()


def test_token_source_drift_and_other_gateway_services(tmp_path: Path) -> None:
    port = free_port()
    ref = {"source": "env", "provider": "default", "id": "GW_TOKEN"}
    config = {"gateway": {"mode": "local", "port": port, "auth": {"mode": "token", "token": ref}}}
    home, _bin, env = _setup(tmp_path, port, config)
    assert cli(env, "gateway", "install").returncode == 0
    env_file = home / ".openclaw/gateway.systemd.env"
    env_file.write_text("OPENCLAW_GATEWAY_TOKEN=left-over\n")  # a clear copy next to a SecretRef
    other = home / ".config/systemd/user/openclaw-gateway-old.service"
    other.write_text(f"[Service]\nExecStart=/usr/bin/openclaw gateway --port {port}\n")

    checks = _checks(cli(env, "doctor", "--json"))
    assert checks["service"]["message"] == (
        f"{UNIT}: token source: {env_file} holds OPENCLAW_GATEWAY_TOKEN but gateway.auth.token is a SecretRef (source=env)"
    )
    assert checks["services"] == {
        "check": "services",
        "ok": False,
        "message": f"other gateway services use port {port} too: {other}",
        "hint": "one gateway per port: give each profile its own port, or uninstall the leftover service",
    }
    fixed = _checks(cli(env, "doctor", "--fix", "--json"))
    assert fixed["service"]["fixed"].startswith("rewrote ")
    assert env_file.read_text() == "" and "TOKEN" not in (home / ".config/systemd/user" / UNIT).read_text()
    other.write_text(f"[Service]\nExecStart=/usr/bin/openclaw gateway --port {port + 1}\n")
    assert _checks(cli(env, "doctor", "--json"))["services"] == {
        "check": "services",
        "ok": True,
        "message": f"other gateway-like services (other ports): {other}",
    }
