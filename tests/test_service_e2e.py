"""The whole CLI path, end to end, in a throwaway HOME: ``python -m openclaw_cli gateway …`` (and the
``daemon`` alias) against a fake ``systemctl`` placed first on PATH, which records its argv and
keeps a tiny enabled/active state. A real gateway process answers the restart health check.
Nothing here reaches the real service manager, HOME or /etc."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gateway_proc import REPO, GatewayProcess, child_env, free_port, local_config, make_home
from test_service_cli import expected_unit

UNIT = "openclaw-gateway.service"

FAKE_SYSTEMCTL = """#!{python}
import json, os, sys
d = os.environ["FAKE_SYSTEMCTL_DIR"]
args = sys.argv[1:]
with open(os.path.join(d, "calls.log"), "a") as f:
    f.write(" ".join(args) + "\\n")
fail = os.environ.get("FAKE_SYSTEMCTL_FAIL", "")
if fail:
    sys.stderr.write(fail + "\\n")
    sys.exit(1)
path = os.path.join(d, "state.json")
try:
    with open(path) as f:
        state = json.load(f)
except OSError:
    state = {{"enabled": False, "active": False}}
words = [a for a in args if not a.startswith("-")]
verb = words[0] if words else ""
if verb == "is-enabled":
    print("enabled" if state["enabled"] else "disabled")
    sys.exit(0 if state["enabled"] else 1)
if verb == "show":
    print("LoadState=loaded")
    print("ActiveState=" + ("active" if state["active"] else "inactive"))
    print("MainPID=" + ("4242" if state["active"] else "0"))
    sys.exit(0)
if verb == "enable":
    state["enabled"] = True
if verb == "disable":
    state["enabled"] = False
    state["active"] = state["active"] and "--now" not in args
if verb in ("start", "restart"):
    state["active"] = True
if verb == "stop":
    state["active"] = False
with open(path, "w") as f:
    json.dump(state, f)
"""


def fake_systemctl(bin_dir: Path) -> Path:
    """Write the fake ``systemctl`` into ``bin_dir``; its calls go to ``bin_dir/calls.log``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "systemctl"
    exe.write_text(FAKE_SYSTEMCTL.format(python=sys.executable))
    exe.chmod(0o755)
    return exe


def systemctl_calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def service_env(home: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    """The child env: HOME is the (throwaway) account home, the fake systemctl first on PATH, /etc out of reach."""
    return child_env(
        home,
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_SYSTEMCTL_DIR": str(bin_dir),
            "OPENCLAW_SERVICE_ACCOUNT_HOME": str(home),
            "OPENCLAW_SYSTEMD_SYSTEM_DIR": str(home.parent / "etc-systemd-system"),
            **extra,
        },
    )


def cli(env: dict[str, str], *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """``python -m openclaw_cli ARGS`` with ``env``, non-interactive (stdin is /dev/null), bounded."""
    return subprocess.run(
        [sys.executable, "-m", "openclaw_cli", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _doc(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CLI picks systemd on Linux only")


def test_lifecycle_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    bin_dir = tmp_path / "bin"
    fake_systemctl(bin_dir)
    env = service_env(home, bin_dir)

    out = cli(env, "gateway", "install", "--port", str(port), "--token", "svc-secret-token", "--json")
    assert out.returncode == 0, out.stderr
    assert _doc(out)["result"] == "installed"
    unit = home / ".config/systemd/user" / UNIT
    assert unit.read_text() == expected_unit(home, port)
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    env_file = home / ".openclaw/gateway.systemd.env"
    assert env_file.read_text() == "OPENCLAW_GATEWAY_TOKEN=svc-secret-token\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert systemctl_calls(bin_dir) == ["--user daemon-reload", f"--user enable {UNIT}", f"--user restart {UNIT}"]
    verify = shutil.which("systemd-analyze")
    if verify:
        result = subprocess.run([verify, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
        if "Failed to initialize manager" not in result.stderr:
            assert result.returncode == 0 and result.stderr == "", result.stderr

    again = cli(env, "gateway", "install", "--port", str(port))
    assert again.returncode == 0, again.stderr
    assert again.stdout == "Gateway service already enabled.\nReinstall with: openclaw gateway install --force\n"

    running = cli(env, "gateway", "start")
    assert (running.returncode, running.stdout) == (0, "Gateway service already running (pid 4242).\n")

    refused = cli(env, "gateway", "stop")
    assert refused.returncode == 1 and "re-run with --force if you really mean it" in refused.stderr
    stopped = cli(env, "gateway", "stop", "--force", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert _doc(stopped) == {
        "action": "stop",
        "ok": True,
        "result": "stopped",
        "service": {"label": "systemd", "loaded": True, "loadedText": "enabled", "notLoadedText": "disabled"},
    }
    started = cli(env, "daemon", "start")  # the alias runs the same command
    assert (started.returncode, started.stdout) == (0, f"Started systemd service: {UNIT}\n"), started.stderr

    with GatewayProcess(tmp_path, home, "--port", str(port), "--allow-unconfigured") as gw:
        gw.wait_ready(port)
        restarted = cli(env, "gateway", "restart", "--json")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert _doc(restarted)["result"] == "restarted"

    gone = cli(env, "daemon", "uninstall")
    assert gone.returncode == 0 and gone.stdout == f"Removed systemd service: {unit}\n", gone.stderr
    assert not unit.exists() and env_file.read_text() == ""
    assert systemctl_calls(bin_dir)[-2:] == [f"--user disable --now {UNIT}", "--user daemon-reload"]
    audit = (home / ".openclaw/logs/gateway-restart.log").read_text().splitlines()
    assert [re.sub(r"^\[[^]]+\] ", "", line) for line in audit] == [
        "openclaw gateway lifecycle source=cli action=install mode=systemd-install interactive=0",
        "openclaw gateway lifecycle source=cli action=stop mode=systemctl-stop pid=4242 interactive=0",
        "openclaw gateway lifecycle source=cli action=start mode=systemctl-start interactive=0",
        "openclaw gateway lifecycle source=cli action=restart mode=systemctl-restart pid=4242 interactive=0",
        "openclaw gateway lifecycle source=cli action=uninstall mode=systemd-uninstall interactive=0",
    ]


def test_install_without_a_user_manager_prints_the_manual_steps(tmp_path: Path) -> None:
    home = make_home(tmp_path, local_config())
    bin_dir = tmp_path / "bin"
    fake_systemctl(bin_dir)
    env = service_env(home, bin_dir, FAKE_SYSTEMCTL_FAIL="Failed to connect to bus: No medium found")
    out = cli(env, "gateway", "install", "--port", "19123")
    assert out.returncode == 1
    assert (
        out.stderr
        == "Gateway install failed: systemctl --user unavailable: Failed to connect to bus: No medium found\n"
    )
    assert (
        "Tip: Once the user manager is reachable: systemctl --user daemon-reload && systemctl --user enable --now"
        in out.stdout
    )
    assert (home / ".config/systemd/user" / UNIT).exists()


def test_throwaway_home_is_not_the_canonical_install(tmp_path: Path) -> None:
    """Without OPENCLAW_SERVICE_ACCOUNT_HOME a throwaway HOME is refused (§10.6 install identity)."""
    home = make_home(tmp_path, local_config())
    bin_dir = tmp_path / "bin"
    fake_systemctl(bin_dir)
    env = service_env(home, bin_dir)
    del env["OPENCLAW_SERVICE_ACCOUNT_HOME"]
    if Path(os.path.expanduser("~" + os.environ.get("USER", ""))).resolve() == home.resolve():
        pytest.skip("HOME is the account home here")
    out = cli(env, "gateway", "start")
    assert out.returncode == 1
    assert out.stderr.startswith(f"service management skipped: HOME ({home}) is not this account's home (")
    assert f"or set OPENCLAW_SERVICE_ACCOUNT_HOME={home} to manage a service for this HOME" in out.stderr
    assert systemctl_calls(bin_dir) == []


def test_help_explains_every_lifecycle_command(tmp_path: Path) -> None:
    env = child_env(tmp_path)
    for args, needles in (
        (("gateway", "install"), ("--port", "--token", "--force", "--system", "--json", "owner-only")),
        (("gateway", "start"), ("--json",)),
        (("gateway", "stop"), ("--force", "--disable", "--json")),
        (("gateway", "restart"), ("--safe", "--force", "--wait", "--skip-deferral", "still-starting")),
        (("gateway", "uninstall"), ("--json",)),
        (("daemon",), ("install", "restart", "status")),
        (("doctor",), ("--fix", "--json", "OPENCLAW_SERVICE_REPAIR_POLICY")),
    ):
        out = cli(env, *args, "--help")
        assert out.returncode == 0, out.stderr
        for needle in needles:
            assert needle in out.stdout, (args, needle, out.stdout)


def test_status_reads_the_service_runtime(tmp_path: Path) -> None:
    """gateway status shows the unit's runtime from systemctl show (diagnostic only), and the
    probe result separately: a running service with a closed port says both."""
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    bin_dir = tmp_path / "bin"
    fake_systemctl(bin_dir)
    env = service_env(home, bin_dir)
    assert cli(env, "gateway", "install", "--port", str(port)).returncode == 0
    out = cli(env, "gateway", "status")
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[0] == "Service: systemd (enabled)"
    assert f"Service file: {home / '.config/systemd/user' / UNIT}" in lines
    assert any(x.startswith("Runtime: running (pid 4242, state active/") for x in lines), lines
    assert "Connectivity probe: failed" in out.stderr and "ECONNREFUSED" in out.stderr
    doc = json.loads(cli(env, "gateway", "status", "--json").stdout)
    assert doc["service"]["loaded"] is True and doc["service"]["runtime"]["status"] == "running"
    assert doc["service"]["runtime"]["pid"] == 4242 and doc["rpc"]["ok"] is False
    cli(env, "gateway", "stop", "--force")
    stopped = cli(env, "gateway", "status").stdout.splitlines()
    assert "Service is loaded but not running (likely exited immediately)." in stopped
