"""Service definitions as rendered text (systemd unit, launchd plist and env wrapper, Windows task
script and schtasks command), compared whole; plus the fake command runner the other service tests use."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

import pytest

from openclaw_cli.service import (
    LAUNCH_AGENT_WRAPPER,
    LaunchdBackend,
    ServiceSpec,
    launchd_label,
    render_launchd_env_file,
    render_startup_launcher,
    render_systemd_unit,
    render_task_env_script,
    render_task_script,
    render_windows_task,
    service_environment,
    unit_name,
    windows_task,
)

Result = tuple[int, str, str]


class FakeRunner:
    """A recording command runner: ``rules`` map an argv prefix to a result (or a list used in turn,
    the last one repeating); the longest matching prefix wins; anything else succeeds quietly."""

    def __init__(self, rules: dict[tuple[str, ...], Result | list[Result]] | None = None) -> None:
        self.rules = {k: (list(v) if isinstance(v, list) else v) for k, v in (rules or {}).items()}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> Result:
        argv = list(argv)
        self.calls.append(argv)
        matches = [p for p in self.rules if tuple(argv[: len(p)]) == p]
        if not matches:
            return 0, "", ""
        rule = self.rules[max(matches, key=len)]
        if isinstance(rule, list):
            return rule.pop(0) if len(rule) > 1 else rule[0]
        return rule

    def mutations(self, *skip: str) -> list[list[str]]:
        """The calls minus read-only probes (``is-enabled``, ``show``, ``print``, ``/Query``) and ``skip``."""
        probes = {"is-enabled", "show", "print", "/Query", *skip}
        return [c for c in self.calls if not probes.intersection(c)]


EXPECTED_UNIT = """[Unit]
Description=OpenClaw Gateway (profile: work)
After=network-online.target
Wants=network-online.target
StartLimitBurst=10
StartLimitIntervalSec=300

[Service]
ExecStart="/opt/py thon/bin/python3" -m openclaw_cli gateway run --port 19001 --allow-unconfigured
Restart=always
RestartSec=5
RestartPreventExitStatus=78
TimeoutStopSec=330
TimeoutStartSec=30
SuccessExitStatus=0 143
OOMPolicy=continue
KillMode=control-group
EnvironmentFile=-/home/u/.openclaw-work/gateway.systemd.env
Environment=HOME=/home/u
Environment=TMPDIR=/tmp
Environment=PATH=/usr/local/bin:/usr/bin:/bin
Environment=OPENCLAW_GATEWAY_PORT=19001
Environment=OPENCLAW_SYSTEMD_UNIT=openclaw-gateway-work.service
Environment=OPENCLAW_SERVICE_MARKER=openclaw
Environment=OPENCLAW_SERVICE_KIND=gateway
Environment=OPENCLAW_PROFILE=work
Environment=OPENCLAW_STATE_DIR=/home/u/.openclaw-work
Environment=OPENCLAW_CONFIG_PATH=/home/u/.openclaw-work/openclaw.json

[Install]
WantedBy=default.target
"""

ARGV = ["/opt/py thon/bin/python3", "-m", "openclaw_cli", "gateway", "run", "--port", "19001", "--allow-unconfigured"]


@pytest.fixture(autouse=True)
def _no_selector_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENCLAW_SYSTEMD_UNIT", "OPENCLAW_LAUNCHD_LABEL", "OPENCLAW_WINDOWS_TASK_NAME"):
        monkeypatch.delenv(key, raising=False)


def _work_env() -> dict[str, str]:
    state = Path("/home/u/.openclaw-work")
    return service_environment(19001, Path("/home/u"), "work", state, state / "openclaw.json")


def test_systemd_unit_text() -> None:
    text = render_systemd_unit(
        argv=ARGV, env=_work_env(), env_file=Path("/home/u/.openclaw-work/gateway.systemd.env"), profile="work"
    )
    assert text == EXPECTED_UNIT


def test_systemd_system_unit_and_dev_working_directory() -> None:
    """§11.2: the system unit is the user template plus ``User=``; a dev install adds WorkingDirectory."""
    text = render_systemd_unit(
        argv=ARGV,
        env=_work_env(),
        env_file=Path("/home/u/.openclaw-work/gateway.systemd.env"),
        profile="work",
        working_dir=Path("/src/open claw"),
        user="u",
    )
    expected = EXPECTED_UNIT.replace("[Service]\n", "[Service]\nUser=u\n").replace(
        "KillMode=control-group\n", 'KillMode=control-group\nWorkingDirectory="/src/open claw"\n'
    )
    assert text == expected


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    import sys

    argv = [sys.executable, *ARGV[1:]]
    unit = tmp_path / "openclaw-gateway-work.service"
    unit.write_text(render_systemd_unit(argv=argv, env=_work_env(), env_file=tmp_path / "env", profile="work"))
    result = subprocess.run([verify, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 and "Failed to initialize manager" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_service_names_per_profile() -> None:
    assert (unit_name(None), unit_name("work")) == ("openclaw-gateway.service", "openclaw-gateway-work.service")
    assert (launchd_label(None), launchd_label("work")) == ("ai.openclaw.gateway", "ai.openclaw.work")
    assert (windows_task(None), windows_task("work")) == ("OpenClaw Gateway", "OpenClaw Gateway (work)")


def test_default_profile_selector_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCLAW_SYSTEMD_UNIT", "my-gateway")
    assert unit_name(None) == "my-gateway.service"
    assert unit_name("work") == "openclaw-gateway-work.service"  # named profiles always derive (§10.6)


EXPECTED_PLIST = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
  <dict>
    <key>Label</key>
    <string>ai.openclaw.work</string>
    <key>Comment</key>
    <string>OpenClaw Gateway (profile: work)</string>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <true/>
    <key>ExitTimeOut</key>
    <integer>20</integer>
    <key>ProcessType</key>
    <string>Interactive</string>
    <key>ThrottleInterval</key>
    <integer>10</integer>
    <key>Umask</key>
    <integer>63</integer>
    <key>StandardInPath</key>
    <string>/dev/null</string>
    <key>ProgramArguments</key>
    <array>
      <string>/bin/sh</string>
      <string>/Users/u/.openclaw-work/service-env/ai.openclaw.work-env-wrapper.sh</string>
      <string>/Users/u/.openclaw-work/service-env/ai.openclaw.work.env</string>
      <string>/opt/py/bin/python3</string>
      <string>-m</string>
      <string>openclaw_cli</string>
      <string>gateway</string>
      <string>run</string>
      <string>--port</string>
      <string>47223</string>
    </array>
    <key>StandardOutPath</key>
    <string>/Users/u/Library/Logs/openclaw/gateway-work.log</string>
    <key>StandardErrorPath</key>
    <string>/Users/u/Library/Logs/openclaw/gateway-work.log</string>
  </dict>
</plist>
"""

EXPECTED_LAUNCHD_ENV = """# Generated by OpenClaw. Do not edit while the gateway service is installed.
export HOME='/Users/u'
export OPENCLAW_CONFIG_PATH='/Users/u/.openclaw-work/openclaw.json'
export OPENCLAW_GATEWAY_PORT='47223'
export OPENCLAW_GATEWAY_TOKEN='tok'\\''en'
export OPENCLAW_LAUNCHD_LABEL='ai.openclaw.work'
export OPENCLAW_PROFILE='work'
export OPENCLAW_SERVICE_KIND='gateway'
export OPENCLAW_SERVICE_MARKER='openclaw'
export OPENCLAW_STATE_DIR='/Users/u/.openclaw-work'
export PATH='/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin'
export TMPDIR='/tmp'
"""


def _mac_spec() -> tuple[LaunchdBackend, ServiceSpec]:
    home, state = Path("/Users/u"), Path("/Users/u/.openclaw-work")
    backend = LaunchdBackend(label="ai.openclaw.work", home=home, state_dir=state, uid=501, profile="work")
    env = service_environment(
        47223,
        home,
        "work",
        state,
        state / "openclaw.json",
        selector=("OPENCLAW_LAUNCHD_LABEL", "ai.openclaw.work"),
        platform="darwin",
    )
    argv = ["/opt/py/bin/python3", "-m", "openclaw_cli", "gateway", "run", "--port", "47223"]
    return backend, ServiceSpec(profile="work", port=47223, argv=argv, env=env)


def test_launchd_plist_text() -> None:
    backend, spec = _mac_spec()
    text = backend.render(spec)
    assert text == EXPECTED_PLIST
    assert plistlib.loads(text.encode())["Umask"] == 63  # well-formed for launchd's parser too
    assert backend.target == "gui/501/ai.openclaw.work" and backend.plist_path == Path(
        "/Users/u/Library/LaunchAgents/ai.openclaw.work.plist"
    )


def test_launchd_env_file_and_wrapper(tmp_path: Path) -> None:
    """The env file holds everything (token included); the wrapper sources it, checks its header, execs."""
    _, spec = _mac_spec()
    env_text = render_launchd_env_file({**spec.env, "OPENCLAW_GATEWAY_TOKEN": "tok'en"})
    assert env_text == EXPECTED_LAUNCHD_ENV
    assert LAUNCH_AGENT_WRAPPER.startswith("#!/bin/sh\nset -eu\n") and LAUNCH_AGENT_WRAPPER.endswith(
        '. "$env_file"\nexec "$@"\n'
    )
    if not os.path.exists("/bin/sh"):
        pytest.skip("no /bin/sh")
    (tmp_path / "wrapper.sh").write_text(LAUNCH_AGENT_WRAPPER)
    (tmp_path / "gw.env").write_text(env_text)
    out = subprocess.run(
        ["/bin/sh", str(tmp_path / "wrapper.sh"), str(tmp_path / "gw.env"), "/usr/bin/env"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "OPENCLAW_GATEWAY_TOKEN=tok'en\n" in out.stdout and "OPENCLAW_GATEWAY_PORT=47223\n" in out.stdout
    (tmp_path / "bad.env").write_text("export X=1\n")
    bad = subprocess.run(
        ["/bin/sh", str(tmp_path / "wrapper.sh"), str(tmp_path / "bad.env"), "/usr/bin/env"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert bad.returncode == 78 and "openclaw gateway install --force" in bad.stderr


def test_windows_task_script_launcher_and_command() -> None:
    state = PureWindowsPath(r"C:\Users\u\.openclaw")
    env = service_environment(
        18789,
        Path(r"C:\Users\u"),
        None,
        Path(str(state)),
        Path(str(state / "openclaw.json")),
        selector=("OPENCLAW_WINDOWS_TASK_NAME", "OpenClaw Gateway"),
        platform="win32",
    )
    script = render_task_script(
        argv=[r"C:\Program Files\Python\python.exe", "-m", "openclaw_cli", "gateway", "run", "--port", "18789"],
        env=env,
        env_script=Path(str(state / "gateway.env.cmd")),
        profile=None,
    )
    assert script == (
        "@echo off\r\n"
        "rem OpenClaw Gateway\r\n"
        'set "HOME=C:\\Users\\u"\r\n'
        'set "OPENCLAW_GATEWAY_PORT=18789"\r\n'
        'set "OPENCLAW_WINDOWS_TASK_NAME=OpenClaw Gateway"\r\n'
        'set "OPENCLAW_SERVICE_MARKER=openclaw"\r\n'
        'set "OPENCLAW_SERVICE_KIND=gateway"\r\n'
        "if exist C:\\Users\\u\\.openclaw\\gateway.env.cmd call C:\\Users\\u\\.openclaw\\gateway.env.cmd\r\n"
        '"C:\\Program Files\\Python\\python.exe" -m openclaw_cli gateway run --port 18789 < NUL\r\n'
    )
    assert render_task_env_script({"OPENCLAW_GATEWAY_TOKEN": "a%b!c"}) == (
        '@echo off\r\nset "OPENCLAW_GATEWAY_TOKEN=a%%b^!c"\r\n'
    )
    launcher = render_startup_launcher(script=Path(r"C:\Users\u\.openclaw\gateway.cmd"), profile="work")
    assert launcher == (
        '@echo off\r\nrem OpenClaw Gateway (profile: work)\r\nstart "" /min cmd.exe /d /c C:\\Users\\u\\.openclaw\\gateway.cmd\r\n'
    )
    assert render_windows_task(name="OpenClaw Gateway (work)", script=Path(r"C:\Users\A B\gateway.cmd")) == [
        "schtasks",
        "/Create",
        "/F",
        "/SC",
        "ONLOGON",
        "/RL",
        "LIMITED",
        "/TN",
        "OpenClaw Gateway (work)",
        "/TR",
        '"C:\\Users\\A B\\gateway.cmd"',
    ]
