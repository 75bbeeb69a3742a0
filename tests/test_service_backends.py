"""Each service backend paired with a recording fake runner: the exact manager command sequences of
runtime-cli.md §11.1 (systemd), §11.3 (launchd) and §11.4 (schtasks), and the files they write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from test_service import FakeRunner

from openclaw_cli.service import (
    LAUNCH_AGENT_WRAPPER,
    LaunchdBackend,
    SchtasksBackend,
    ServiceError,
    ServiceSpec,
    SystemdBackend,
    render_startup_launcher,
)

UNIT = "openclaw-gateway.service"
ARGV = ["/usr/bin/python3", "-m", "openclaw_cli", "gateway", "run", "--port", "19123"]
NOT_LOADED = (113, "", 'Could not find service "ai.openclaw.gateway" in domain for port')


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _spec(token: str | None = None, **kw: object) -> ServiceSpec:
    env = {"HOME": "/home/u", "OPENCLAW_GATEWAY_PORT": "19123"}
    return ServiceSpec(profile=None, port=19123, argv=list(ARGV), env=env, token=token, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- systemd


def _systemd(tmp_path: Path, runner: FakeRunner, *, is_root: bool = False) -> SystemdBackend:
    return SystemdBackend(
        unit=UNIT,
        home=tmp_path / "home",
        state_dir=tmp_path / "home" / ".openclaw",
        runner=runner,
        system_dir=tmp_path / "etc-systemd-system",
        is_root=is_root,
    )


def test_systemd_install_writes_unit_and_env_file_then_reload_enable_restart(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _systemd(tmp_path, runner)
    out: list[str] = []
    assert backend.install(_spec(token="s3cret"), out) == "systemd-install"
    assert runner.calls == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT],
        ["systemctl", "--user", "restart", UNIT],
    ]
    unit = tmp_path / "home/.config/systemd/user" / UNIT
    assert unit.read_text() == backend.render(_spec()) and _mode(unit) == 0o644
    assert "s3cret" not in unit.read_text()
    env_file = tmp_path / "home/.openclaw/gateway.systemd.env"
    assert env_file.read_text() == "OPENCLAW_GATEWAY_TOKEN=s3cret\n" and _mode(env_file) == 0o600
    assert out == [f"Installed systemd service: {unit}", f"Started systemd service: {UNIT}"]
    # a rewrite keeps the previous unit as .bak and keeps the stored token unless told otherwise
    other = _spec()
    other.argv[-1] = "19124"
    backend.install(other, [])
    assert (unit.parent / f"{UNIT}.bak").read_text() == backend.render(_spec())
    assert "--port 19124" in unit.read_text() and env_file.read_text() == "OPENCLAW_GATEWAY_TOKEN=s3cret\n"
    backend.install(_spec(clear_token=True), [])
    assert env_file.read_text() == ""


def test_systemd_install_retries_once_after_unit_not_found(tmp_path: Path) -> None:
    runner = FakeRunner(
        {
            ("systemctl", "--user", "restart"): [
                (5, "", f"Failed to restart {UNIT}: Unit {UNIT} not found."),
                (0, "", ""),
            ]
        }
    )
    _systemd(tmp_path, runner).install(_spec(), [])
    assert runner.calls == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT],
        ["systemctl", "--user", "restart", UNIT],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "restart", UNIT],
    ]


def test_systemd_unavailable_keeps_the_unit_and_says_what_to_run(tmp_path: Path) -> None:
    runner = FakeRunner(
        {("systemctl", "--user", "daemon-reload"): (1, "", "Failed to connect to bus: No medium found")}
    )
    backend = _systemd(tmp_path, runner)
    out: list[str] = []
    with pytest.raises(ServiceError) as err:
        backend.install(_spec(), out)
    assert err.value.message == "systemctl --user unavailable: Failed to connect to bus: No medium found"
    assert err.value.result == "installed-not-started"
    assert (
        f"Once the user manager is reachable: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
        in err.value.hints
    )
    assert backend.unit_path.exists() and out == [f"Installed systemd service: {backend.unit_path}"]
    assert runner.calls == [["systemctl", "--user", "daemon-reload"]]


def test_systemd_start_stop_restart_sequences(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _systemd(tmp_path, runner)
    out: list[str] = []
    assert backend.start(out) == "systemctl-start"
    assert backend.stop(out) == "systemctl-stop"
    assert backend.restart(out) == "systemctl-restart"
    assert runner.calls == [
        ["systemctl", "--user", "reset-failed", UNIT],
        ["systemctl", "--user", "start", UNIT],
        ["systemctl", "--user", "stop", UNIT],
        ["systemctl", "--user", "reset-failed", UNIT],
        ["systemctl", "--user", "restart", UNIT],
    ]
    assert out == [
        f"Started systemd service: {UNIT}",
        f"Stopped systemd service: {UNIT}",
        f"Restarted systemd service: {UNIT}",
    ]
    failing = FakeRunner({("systemctl", "--user", "start"): (1, "", "Job for x failed.")})
    with pytest.raises(ServiceError, match=r"^systemctl start failed: Job for x failed\.$"):
        _systemd(tmp_path, failing).start([])


def test_systemd_status_parses_show(tmp_path: Path) -> None:
    show = "Id=openclaw-gateway.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\n"
    runner = FakeRunner({("systemctl", "--user", "show"): (0, show, "")})
    backend = _systemd(tmp_path, runner)
    assert backend.status().loaded is False  # nothing installed: no manager query at all
    assert runner.calls == []
    backend.install(_spec(), [])
    runner.calls.clear()
    status = backend.status()
    assert (status.loaded, status.state, status.pid) == (True, "running", 4242)
    assert runner.calls[0] == ["systemctl", "--user", "is-enabled", UNIT]
    assert runner.calls[1][:5] == ["systemctl", "--user", "show", UNIT, "--no-page"]


def test_systemd_system_scope_unit_refusals(tmp_path: Path) -> None:
    """§11.2: non-root may not start/stop/restart a system unit, nor install a competing user unit."""
    runner = FakeRunner()
    backend = _systemd(tmp_path, runner)
    system_unit = tmp_path / "etc-systemd-system" / UNIT
    system_unit.parent.mkdir()
    system_unit.write_text("[Service]\nExecStart=/bin/true --port 18789\n")
    for action in ("start", "stop", "restart"):
        with pytest.raises(ServiceError) as err:
            getattr(backend, action)([])
        assert err.value.message == (
            f"{UNIT} is a system-scope unit ({system_unit}); run `sudo systemctl {action} {UNIT}` to {action} it"
        )
    with pytest.raises(ServiceError) as err:
        backend.install(_spec(), [])
    assert err.value.message.startswith(f"System systemd unit {system_unit} already owns this gateway unit name.\n")
    assert "--force does not override system ownership" in err.value.message
    assert not backend.unit_path.exists() and runner.calls == []
    root = FakeRunner()
    _systemd(tmp_path, root, is_root=True).restart([])
    assert root.calls == [["systemctl", "reset-failed", UNIT], ["systemctl", "restart", UNIT]]


def test_systemd_uninstall(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _systemd(tmp_path, runner)
    out: list[str] = []
    assert backend.uninstall(out) is None and out == [f"Systemd service not found at {backend.unit_path}"]
    backend.install(_spec(token="tok"), [])
    backend.env_file.write_text("OTHER=1\nOPENCLAW_GATEWAY_TOKEN=tok\n")
    runner.calls.clear()
    out.clear()
    assert backend.uninstall(out) == "systemd-uninstall"
    assert runner.calls == [["systemctl", "--user", "disable", "--now", UNIT], ["systemctl", "--user", "daemon-reload"]]
    assert not backend.unit_path.exists() and backend.env_file.read_text() == "OTHER=1\n"
    assert out == [f"Removed systemd service: {backend.unit_path}"]


# --------------------------------------------------------------------------- launchd


def _launchd(tmp_path: Path, runner: FakeRunner, **kw: object) -> LaunchdBackend:
    return LaunchdBackend(
        label="ai.openclaw.gateway",
        home=tmp_path / "home",
        state_dir=tmp_path / "home" / ".openclaw",
        uid=501,
        profile=None,
        runner=runner,
        system_dir=tmp_path / "LaunchDaemons",
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


TARGET = "gui/501/ai.openclaw.gateway"


def test_launchd_install_writes_owner_only_files_and_enables_bootstraps_kickstarts(tmp_path: Path) -> None:
    runner = FakeRunner({("launchctl", "print"): NOT_LOADED})
    backend = _launchd(tmp_path, runner)
    out: list[str] = []
    assert backend.install(_spec(token="s3cret"), out) == "launchd-install"
    plist = tmp_path / "home/Library/LaunchAgents/ai.openclaw.gateway.plist"
    assert runner.calls == [
        ["launchctl", "print", TARGET],
        ["launchctl", "enable", TARGET],
        ["launchctl", "bootstrap", "gui/501", str(plist)],
        ["launchctl", "kickstart", TARGET],
    ]
    assert plist.read_text() == backend.render(_spec()) and _mode(plist) == 0o644
    assert "s3cret" not in plist.read_text()
    env_file = tmp_path / "home/.openclaw/service-env/ai.openclaw.gateway.env"
    wrapper = tmp_path / "home/.openclaw/service-env/ai.openclaw.gateway-env-wrapper.sh"
    assert _mode(env_file) == 0o600 and _mode(wrapper) == 0o700 and _mode(env_file.parent) == 0o700
    assert "export OPENCLAW_GATEWAY_TOKEN='s3cret'\n" in env_file.read_text()
    assert wrapper.read_text() == LAUNCH_AGENT_WRAPPER
    log = tmp_path / "home/Library/Logs/openclaw/gateway.log"
    assert out == [f"Installed LaunchAgent: {plist}", f"Started LaunchAgent: {TARGET}", f"Logs: {log}"]
    # reinstall while loaded: bootout first; the stored token survives a reinstall without --token
    runner.rules[("launchctl", "print")] = (0, "state = running\npid = 77\n", "")
    runner.calls.clear()
    backend.install(_spec(), [])
    assert runner.mutations() == [
        ["launchctl", "bootout", TARGET],
        ["launchctl", "enable", TARGET],
        ["launchctl", "bootstrap", "gui/501", str(plist)],
        ["launchctl", "kickstart", TARGET],
    ]
    assert backend.stored_token() == "s3cret"


def test_launchd_start_restart_stop_sequences(tmp_path: Path) -> None:
    runner = FakeRunner(
        {
            ("launchctl", "bootstrap"): (5, "", "Bootstrap failed: 130: Service already loaded"),
            ("launchctl", "print"): [(0, "state = running\n", ""), NOT_LOADED],
        }
    )
    backend = _launchd(tmp_path, runner)
    out: list[str] = []
    assert backend.start(out) == "kickstart"  # already loaded: bootstrap's complaint is fine
    assert backend.restart(out) == "kickstart"
    assert backend.stop(out) == "bootout"
    plist = str(backend.plist_path)
    assert runner.calls == [
        ["launchctl", "enable", TARGET],
        ["launchctl", "bootstrap", "gui/501", plist],
        ["launchctl", "kickstart", TARGET],
        ["launchctl", "kickstart", "-k", TARGET],
        ["launchctl", "bootout", TARGET],
        ["launchctl", "print", TARGET],  # verified unloaded: still there once,
        ["launchctl", "print", TARGET],  # then gone
    ]
    assert out == [
        f"Started LaunchAgent: {TARGET}",
        f"Restarted LaunchAgent: {TARGET}",
        f"Stopped LaunchAgent: {TARGET}",
    ]


def test_launchd_stop_disable_and_unverified_stop(tmp_path: Path) -> None:
    runner = FakeRunner({("launchctl", "print"): NOT_LOADED})
    assert _launchd(tmp_path, runner).stop([], disable=True) == "disable-bootout"
    assert runner.mutations() == [["launchctl", "disable", TARGET], ["launchctl", "bootout", TARGET]]
    stuck = FakeRunner({("launchctl", "print"): (0, "state = running\n", "")})
    with pytest.raises(ServiceError) as err:
        _launchd(tmp_path, stuck, stop_timeout_s=0.0).stop([])
    assert err.value.message == f"LaunchAgent stop did not complete: {TARGET} is still loaded"
    assert err.value.hints == [f"launchctl bootout {TARGET}"]


def test_launchd_restart_bootstraps_when_not_loaded(tmp_path: Path) -> None:
    runner = FakeRunner({("launchctl", "kickstart", "-k"): NOT_LOADED})
    _launchd(tmp_path, runner).restart([])
    assert runner.calls[1:] == [
        ["launchctl", "enable", TARGET],
        ["launchctl", "bootstrap", "gui/501", str(tmp_path / "home/Library/LaunchAgents/ai.openclaw.gateway.plist")],
        ["launchctl", "kickstart", TARGET],
    ]


def test_launchd_system_daemon_blocks_everything(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _launchd(tmp_path, runner)
    (tmp_path / "LaunchDaemons").mkdir()
    (tmp_path / "LaunchDaemons/ai.openclaw.gateway.plist").write_text("<plist/>")
    for call in (lambda: backend.install(_spec(), []), lambda: backend.start([]), lambda: backend.stop([])):
        with pytest.raises(ServiceError, match="System LaunchDaemon .* already owns this gateway label"):
            call()
    assert runner.calls == [] and not backend.plist_path.exists()


def test_launchd_uninstall(tmp_path: Path) -> None:
    runner = FakeRunner({("launchctl", "print"): NOT_LOADED})
    backend = _launchd(tmp_path, runner)
    backend.install(_spec(token="t"), [])
    runner.calls.clear()
    out: list[str] = []
    assert backend.uninstall(out) == "launchd-uninstall"
    assert runner.calls == [["launchctl", "bootout", TARGET]]
    assert not backend.plist_path.exists() and not backend.env_file.exists() and not backend.wrapper.exists()
    assert out == [f"Removed LaunchAgent: {backend.plist_path}"]


# --------------------------------------------------------------------------- schtasks


def _schtasks(tmp_path: Path, runner: FakeRunner) -> SchtasksBackend:
    return SchtasksBackend(
        task="OpenClaw Gateway",
        state_dir=tmp_path / "state",
        startup_dir=tmp_path / "Startup",
        profile=None,
        runner=runner,
    )


def test_schtasks_install_creates_and_runs_the_task(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _schtasks(tmp_path, runner)
    out: list[str] = []
    assert backend.install(_spec(token="s3cret"), out) == "schtasks-install"
    script = tmp_path / "state/gateway.cmd"
    assert runner.calls == [
        [
            "schtasks",
            "/Create",
            "/F",
            "/SC",
            "ONLOGON",
            "/RL",
            "LIMITED",
            "/TN",
            "OpenClaw Gateway",
            "/TR",
            str(script),
        ],
        ["schtasks", "/Run", "/TN", "OpenClaw Gateway"],
    ]
    assert script.read_bytes().decode() == backend.render(_spec()) and b"s3cret" not in script.read_bytes()
    assert (tmp_path / "state/gateway.env.cmd").read_bytes() == b'@echo off\r\nset "OPENCLAW_GATEWAY_TOKEN=s3cret"\r\n'
    assert _mode(tmp_path / "state/gateway.env.cmd") == 0o600
    assert out == ["Installed Scheduled Task: OpenClaw Gateway", f"Task script: {script}"]


def test_schtasks_denied_falls_back_to_the_startup_folder(tmp_path: Path) -> None:
    runner = FakeRunner({("schtasks", "/Create"): (1, "", "ERROR: Access is denied.")})
    backend = _schtasks(tmp_path, runner)
    out: list[str] = []
    assert backend.install(_spec(), out) == "startup-entry-install"
    entry = tmp_path / "Startup/OpenClaw Gateway.cmd"
    script = tmp_path / "state/gateway.cmd"
    assert entry.read_bytes().decode() == render_startup_launcher(script=script, profile=None)
    assert runner.calls[1:] == [["cmd.exe", "/d", "/c", str(entry)]]
    assert out == [f"Installed Windows login item: {entry}", f"Task script: {script}"]
    # with the task missing, lifecycle actions drive the login item
    runner.rules[("schtasks", "/Query")] = (1, "", "ERROR: The system cannot find the file specified.")
    runner.calls.clear()
    assert backend.installed()
    assert backend.start([]) == "startup-entry-start"
    assert runner.mutations() == [["cmd.exe", "/d", "/c", str(entry)]]
    (tmp_path / "state/gateway.lock").write_text("4242\n19123\n")
    runner.calls.clear()
    assert backend.stop([]) == "startup-entry-stop"
    assert runner.mutations() == [["taskkill", "/PID", "4242", "/T", "/F"]]
    assert backend.uninstall([]) == "startup-entry-uninstall" and not entry.exists() and not script.exists()


def test_schtasks_lifecycle_sequences(tmp_path: Path) -> None:
    runner = FakeRunner()
    backend = _schtasks(tmp_path, runner)
    backend.install(_spec(), [])
    runner.calls.clear()
    out: list[str] = []
    assert backend.start(out) == "schtasks-start"
    assert backend.stop(out) == "schtasks-stop"
    assert backend.restart(out) == "schtasks-restart"
    assert backend.uninstall(out) == "schtasks-uninstall"
    name = "OpenClaw Gateway"
    assert runner.mutations() == [
        ["schtasks", "/Run", "/TN", name],
        ["schtasks", "/End", "/TN", name],
        ["schtasks", "/End", "/TN", name],
        ["schtasks", "/Run", "/TN", name],
        ["schtasks", "/End", "/TN", name],
        ["schtasks", "/Delete", "/F", "/TN", name],
    ]
    assert out == [
        f"Started Scheduled Task: {name}",
        f"Stopped Scheduled Task: {name}",
        f"Restarted Scheduled Task: {name}",
        f"Removed Scheduled Task: {name}",
    ]
    status = FakeRunner({("schtasks", "/Query"): (0, "TaskName: \\OpenClaw Gateway\nStatus: Running\n", "")})
    assert _schtasks(tmp_path, status).status().state == "running"
