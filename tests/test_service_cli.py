"""The lifecycle commands over a fake service manager: the §10.6 JSON envelope and messages, the
refusals, idempotence, the audit line, restart health outcomes, SecretRef tokens, backend choice."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_service import FakeRunner

from openclaw_cli.service import (
    Ctx,
    dev_root,
    do_install,
    do_restart,
    do_start,
    do_stop,
    do_uninstall,
    make_backend,
    parse_duration_ms,
)

UNIT = "openclaw-gateway.service"
SERVICE = {"label": "systemd", "loaded": True, "loadedText": "enabled", "notLoadedText": "disabled"}
AUDIT_RE = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] openclaw gateway lifecycle (.*)$")
RUNNING = (0, "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\n", "")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENCLAW_SYSTEMD_UNIT", "OPENCLAW_LAUNCHD_LABEL", "OPENCLAW_WINDOWS_TASK_NAME"):
        monkeypatch.delenv(key, raising=False)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def make_ctx(
    tmp_path: Path,
    *,
    platform: str = "linux",
    profile: str | None = None,
    config: dict[str, Any] | None = None,
    runner: FakeRunner | None = None,
    env: dict[str, str] | None = None,
    interactive: bool = False,
    is_root: bool = False,
    probe: Callable[[int], str] | None = None,
) -> Ctx:
    home = tmp_path / "home"
    state = home / (f".openclaw-{profile}" if profile else ".openclaw")
    state.mkdir(parents=True, exist_ok=True)
    config_path = state / "openclaw.json"
    if config is not None:
        config_path.write_text(json.dumps(config))
    full_env = {
        "HOME": str(home),
        "OPENCLAW_SERVICE_ACCOUNT_HOME": str(home),
        "OPENCLAW_SYSTEMD_SYSTEM_DIR": str(tmp_path / "etc-systemd-system"),
        **({"OPENCLAW_PROFILE": profile} if profile else {}),
        **(env or {}),
    }
    backend = make_backend(
        platform,
        profile=profile,
        home=home,
        state_dir=state,
        env=full_env,
        runner=runner if runner is not None else FakeRunner(),
        is_root=is_root,
    )
    clock = Clock()
    return Ctx(
        profile=profile,
        home=home,
        state_dir=state,
        config_path=config_path,
        config=config or {},
        backend=backend,
        env=full_env,
        platform=platform,
        interactive=interactive,
        is_root=is_root,
        user="u",
        probe=probe or (lambda _port: "ready"),
        sleep=clock.sleep,
        clock=clock.now,
        health_timeout_s=5.0,
    )


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def _audit(ctx: Ctx) -> list[str]:
    path = ctx.state_dir / "logs" / "gateway-restart.log"
    lines = path.read_text().splitlines() if path.exists() else []
    out = []
    for line in lines:
        m = AUDIT_RE.match(line)
        assert m, line
        out.append(m.group(1))
    return out


def expected_unit(home: Path, port: int) -> str:
    py = sys.executable
    if re.search(r'[\s"\\%]', py):
        pytest.skip("interpreter path needs systemd quoting")
    root = dev_root()
    wd = f"WorkingDirectory={root}\n" if root else ""
    return (
        "[Unit]\nDescription=OpenClaw Gateway\nAfter=network-online.target\nWants=network-online.target\n"
        "StartLimitBurst=10\nStartLimitIntervalSec=300\n\n[Service]\n"
        f"ExecStart={py} -m openclaw_cli gateway run --port {port}\n"
        "Restart=always\nRestartSec=5\nRestartPreventExitStatus=78\nTimeoutStopSec=330\nTimeoutStartSec=30\n"
        "SuccessExitStatus=0 143\nOOMPolicy=continue\nKillMode=control-group\n"
        f"{wd}EnvironmentFile=-{home}/.openclaw/gateway.systemd.env\n"
        f"Environment=HOME={home}\nEnvironment=TMPDIR=/tmp\nEnvironment=PATH=/usr/local/bin:/usr/bin:/bin\n"
        f"Environment=OPENCLAW_GATEWAY_PORT={port}\nEnvironment=OPENCLAW_SYSTEMD_UNIT={UNIT}\n"
        "Environment=OPENCLAW_SERVICE_MARKER=openclaw\nEnvironment=OPENCLAW_SERVICE_KIND=gateway\n\n"
        "[Install]\nWantedBy=default.target\n"
    )


# --------------------------------------------------------------------------- install


def test_install_renders_the_unit_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    assert do_install(ctx, port=19123, token="svc-secret", json_=True) == 0
    assert _json(capsys) == {"action": "install", "ok": True, "result": "installed", "service": SERVICE}
    unit = ctx.home / ".config/systemd/user" / UNIT
    assert unit.read_text() == expected_unit(ctx.home, 19123)
    assert (ctx.state_dir / "gateway.systemd.env").read_text() == "OPENCLAW_GATEWAY_TOKEN=svc-secret\n"
    assert runner.mutations() == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT],
        ["systemctl", "--user", "restart", UNIT],
    ]
    assert _audit(ctx) == ["source=cli action=install mode=systemd-install interactive=0"]


def test_install_is_a_noop_when_installed_unless_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    do_install(ctx, port=19123)
    capsys.readouterr()
    runner.calls.clear()
    assert do_install(ctx, port=19123) == 0
    assert capsys.readouterr().out == (
        "Gateway service already enabled.\nReinstall with: openclaw gateway install --force\n"
    )
    assert runner.mutations() == []
    assert do_install(ctx, port=19124, json_=True) == 0
    doc = _json(capsys)
    assert doc["result"] == "already-installed" and doc["message"] == "Gateway service already enabled."
    assert doc["warnings"] == [
        "The installed service definition differs from this install: port 19123 (requested 19124); "
        "run `openclaw gateway install --force` to rewrite it."
    ]
    assert do_install(ctx, port=19124, force=True) == 0
    assert "--port 19124" in (ctx.home / ".config/systemd/user" / UNIT).read_text()
    assert runner.mutations()[-3:] == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", UNIT],
        ["systemctl", "--user", "restart", UNIT],
    ]


def test_install_when_systemctl_user_is_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_bus = (1, "", "Failed to connect to bus: No medium found")
    runner = FakeRunner({("systemctl", "--user"): no_bus})
    ctx = make_ctx(tmp_path, runner=runner)
    assert do_install(ctx, port=19123) == 1
    captured = capsys.readouterr()
    unit = ctx.home / ".config/systemd/user" / UNIT
    assert (
        captured.err
        == "Gateway install failed: systemctl --user unavailable: Failed to connect to bus: No medium found\n"
    )
    assert captured.out == (
        f"Installed systemd service: {unit}\n"
        "Tip: systemd user services are unavailable; install/enable systemd or run the gateway under your supervisor.\n"
        "Tip: On a headless server (SSH/no desktop session): run `sudo loginctl enable-linger $(whoami)` to persist "
        "your systemd user session across logins.\n"
        "Tip: Also ensure XDG_RUNTIME_DIR is set: `export XDG_RUNTIME_DIR=/run/user/$(id -u)`, then retry.\n"
        "Tip: If you're in a container, run the gateway in the foreground instead of `openclaw gateway`.\n"
        f"Tip: Once the user manager is reachable: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}\n"
        # The failed install says the unit stays, and how to remove it (issue 9 item 11).
        f"Tip: The unit file stays at {unit} (and its env file at {ctx.state_dir / 'gateway.systemd.env'}) so it can be "
        f"enabled later; to remove it instead: rm {unit} {ctx.state_dir / 'gateway.systemd.env'}\n"
    )
    assert unit.exists()
    assert do_install(ctx, port=19123, json_=True) == 1
    doc = _json(capsys)
    assert doc["result"] == "installed-not-started"
    assert [item["kind"] for item in doc["hintItems"]] == [
        "systemd-unavailable",
        "systemd-headless",
        "systemd-headless",
        "container-foreground",
        "generic",
        "generic",
    ]


def test_install_with_a_secret_ref_token_writes_no_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = {"source": "env", "provider": "default", "id": "GW_TOKEN"}
    ctx = make_ctx(tmp_path, config={"gateway": {"mode": "local", "auth": {"mode": "token", "token": ref}}})
    env_file = ctx.state_dir / "gateway.systemd.env"
    env_file.write_text("OPENCLAW_GATEWAY_TOKEN=stale\n")
    assert do_install(ctx, port=19123, token="cli-token", json_=True) == 0
    doc = _json(capsys)
    assert doc["warnings"] == [
        "gateway.auth.token is a SecretRef (source=env); the service resolves it at runtime, so --token was not stored."
    ]
    unit = (ctx.home / ".config/systemd/user" / UNIT).read_text()
    assert "TOKEN" not in unit and "cli-token" not in unit
    assert env_file.read_text() == ""  # the stale clear copy is gone too


def test_install_system_prints_the_system_unit_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    assert do_install(ctx, port=19123, system=True) == 0
    captured = capsys.readouterr()
    assert captured.out == expected_unit(ctx.home, 19123).replace("[Service]\n", "[Service]\nUser=u\n")
    system_unit = tmp_path / "etc-systemd-system" / UNIT
    assert captured.err == (
        f"System unit for {system_unit} (not written). To install it:\n"
        f"  openclaw gateway install --system | sudo tee {system_unit} >/dev/null\n"
        f"  sudo systemctl daemon-reload && sudo systemctl enable --now {UNIT}\n"
    )
    assert not system_unit.exists() and not (ctx.home / ".config").exists() and runner.calls == []


def test_install_refused_when_a_system_unit_owns_the_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    system_unit = tmp_path / "etc-systemd-system" / UNIT
    system_unit.parent.mkdir()
    system_unit.write_text("[Service]\nExecStart=/bin/true\n")
    assert do_install(ctx, port=19123, force=True) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"Gateway install blocked: System systemd unit {system_unit} already owns this gateway unit name.\n"
    )
    assert not (ctx.home / ".config").exists() and runner.calls == []


def test_backend_follows_the_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mac = FakeRunner({("launchctl", "print"): (113, "", "Could not find service")})
    ctx = make_ctx(tmp_path / "mac", platform="darwin", runner=mac)
    assert do_install(ctx, port=19123, token="tok", json_=True) == 0
    assert _json(capsys)["service"] == {
        "label": "LaunchAgent",
        "loaded": True,
        "loadedText": "loaded",
        "notLoadedText": "not loaded",
    }
    plist = ctx.home / "Library/LaunchAgents/ai.openclaw.gateway.plist"
    assert "tok" not in plist.read_text() and "<string>/bin/sh</string>" in plist.read_text()
    target = f"gui/{os.getuid()}/ai.openclaw.gateway"
    assert mac.mutations() == [
        ["launchctl", "enable", target],
        ["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)],
        ["launchctl", "kickstart", target],
    ]
    win = FakeRunner({("schtasks", "/Create"): (1, "", "ERROR: Access is denied.")})
    ctx = make_ctx(tmp_path / "win", platform="win32", runner=win, env={"APPDATA": str(tmp_path / "appdata")})
    assert do_install(ctx, port=19123, json_=True) == 0
    assert _json(capsys)["service"]["label"] == "Scheduled Task"
    entry = tmp_path / "appdata/Microsoft/Windows/Start Menu/Programs/Startup/OpenClaw Gateway.cmd"
    assert entry.exists() and win.calls[-1] == ["cmd.exe", "/d", "/c", str(entry)]
    assert _audit(ctx) == ["source=cli action=install mode=startup-entry-install interactive=0"]
    ctx = make_ctx(tmp_path / "other", platform="sunos5")
    assert do_start(ctx) == 1
    assert capsys.readouterr().err == "Gateway service install not supported on sunos5\n"


# --------------------------------------------------------------------------- refusals


def test_install_identity_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each refusal names its real cause (issue 9 item 11), and the HOME one the override."""
    skipped = (
        "service management skipped: {cause}. Rerun with HOME set to the OS account "
        "home, without OPENCLAW_HOME, and with OPENCLAW_STATE_DIR and OPENCLAW_CONFIG_PATH either unset or pointing "
        "at the canonical paths for that account home and profile to {{}}{override}."
    )
    home = tmp_path / "home"
    causes = {
        "OPENCLAW_STATE_DIR": (f"OPENCLAW_STATE_DIR ({tmp_path / 'elsewhere'}) is not this profile's state dir ({home / '.openclaw'})", ""),
        "OPENCLAW_CONFIG_PATH": (
            f"OPENCLAW_CONFIG_PATH ({tmp_path / 'x.json'}) is not this profile's config path ({home / '.openclaw' / 'openclaw.json'})",
            "",
        ),
        "OPENCLAW_HOME": (f"OPENCLAW_HOME is set ({tmp_path / 'oc-home'})", ""),
        "OPENCLAW_SERVICE_ACCOUNT_HOME": (
            f"HOME ({home}) is not this account's home ({tmp_path / 'real-home'}, from OPENCLAW_SERVICE_ACCOUNT_HOME)",
            f", or set OPENCLAW_SERVICE_ACCOUNT_HOME={home} to manage a service for this HOME",
        ),
    }
    for env in (
        {"OPENCLAW_STATE_DIR": str(tmp_path / "elsewhere")},
        {"OPENCLAW_CONFIG_PATH": str(tmp_path / "x.json")},
        {"OPENCLAW_HOME": str(tmp_path / "oc-home")},
        {"OPENCLAW_SERVICE_ACCOUNT_HOME": str(tmp_path / "real-home")},
    ):
        cause, override = causes[next(iter(env))]
        skipped_here = skipped.format(cause=cause, override=override)
        runner = FakeRunner()
        ctx = make_ctx(tmp_path, runner=runner, env=env)
        assert do_start(ctx) == 1
        assert capsys.readouterr().err == skipped_here.format("start the gateway") + "\n"
        assert do_stop(ctx, force=True) == 1
        assert capsys.readouterr().err == skipped_here.format("stop the gateway") + "\n"
        assert do_uninstall(ctx) == 1
        assert capsys.readouterr().err == skipped_here.format("uninstall the gateway service") + "\n"
        assert do_install(ctx) == 1
        assert (
            capsys.readouterr().err
            == "Gateway install blocked: " + skipped_here.format("install or rewrite the gateway service") + "\n"
        )
        assert do_restart(ctx, json_=True) == 1
        assert _json(capsys) == {
            "action": "restart",
            "ok": False,
            "error": "Gateway restart failed: Error: " + skipped_here.format("restart the gateway"),
        }
        assert runner.calls == []
    # canonical overrides are fine
    ctx = make_ctx(tmp_path, env={"OPENCLAW_STATE_DIR": str(tmp_path / "home/.openclaw")})
    assert do_install(ctx, port=19123) == 0


def test_named_profile_may_not_override_the_unit_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_ctx(tmp_path, profile="work", env={"OPENCLAW_SYSTEMD_UNIT": "custom.service"})
    assert do_start(ctx) == 1
    assert capsys.readouterr().err == (
        "service management skipped: named profiles cannot override OPENCLAW_SYSTEMD_UNIT for Linux service "
        "management. Unset OPENCLAW_SYSTEMD_UNIT so OpenClaw derives the native service identity from "
        "OPENCLAW_PROFILE to start the gateway, or keep this profile runtime-only without a native service.\n"
    )


def test_external_supervisor_and_nix_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner, env={"OPENCLAW_SUPERVISOR_MODE": "external"})
    for call, prose in (
        (lambda: do_start(ctx), "start the gateway"),
        (lambda: do_stop(ctx, force=True), "stop the gateway"),
        (lambda: do_uninstall(ctx), "uninstall the gateway service"),
    ):
        assert call() == 1
        assert capsys.readouterr().err == (
            "OpenClaw gateway lifecycle is managed by an external supervisor (OPENCLAW_SUPERVISOR_MODE=external). "
            f"Use that supervisor to {prose}.\n"
        )
    assert do_install(ctx) == 1
    assert capsys.readouterr().err.startswith(
        "Gateway install blocked: OpenClaw gateway lifecycle is managed by an external"
    )
    assert runner.calls == []
    nix = make_ctx(tmp_path, env={"OPENCLAW_NIX_MODE": "1"})
    assert do_install(nix) == 1
    assert capsys.readouterr().err == "Nix mode detected; service install is disabled.\n"


def test_stop_needs_force_when_not_interactive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    unit = ctx.home / ".config" / "systemd" / "user" / UNIT
    absent = {
        "action": "stop",
        "ok": True,
        "result": "not-loaded",
        "message": f"No gateway service is installed ({unit} does not exist); nothing to stop.",
        "service": {**SERVICE, "loaded": False},
    }
    # No service: a successful no-op that says so, with or without --force (issue 9 item 11).
    assert do_stop(ctx, json_=True) == 0
    assert _json(capsys) == absent
    assert do_stop(ctx, force=True, json_=True) == 0
    assert _json(capsys) == absent
    assert runner.calls == []
    interactive = make_ctx(tmp_path, runner=runner, interactive=True)
    do_install(interactive, port=19123)
    runner.rules[("systemctl", "--user", "show")] = RUNNING
    capsys.readouterr()
    assert do_stop(ctx, json_=True) == 1  # installed and running: a non-interactive stop needs --force
    assert _json(capsys) == {
        "action": "stop",
        "ok": False,
        "error": "This stops the operator's running gateway service. Use an isolated dev gateway (openclaw gateway "
        "run --dev, or --profile <name> with a free port) for testing, or re-run with --force if you really mean it.",
    }
    assert do_stop(interactive) == 0
    assert capsys.readouterr().out == f"Stopped systemd service: {UNIT}\n"
    assert _audit(ctx)[-1] == "source=cli action=stop mode=systemctl-stop pid=4242 interactive=1"


# --------------------------------------------------------------------------- start


def test_start_not_installed_prints_the_tips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_ctx(tmp_path)
    assert do_start(ctx) == 1
    captured = capsys.readouterr()
    assert captured.err == "Gateway service disabled.\n"
    assert captured.out == (
        f"Tip: openclaw gateway install\nTip: openclaw gateway start\nTip: systemctl --user start {UNIT}\n"
    )
    assert do_start(make_ctx(tmp_path / "p", profile="work"), json_=True) == 1
    assert _json(capsys) == {
        "action": "start",
        "ok": False,
        "error": "Gateway service disabled.",
        "hints": [
            "openclaw --profile work gateway install",
            "openclaw --profile work gateway start",
            "systemctl --user start openclaw-gateway-work.service",
        ],
        "hintItems": [
            {"kind": "install", "text": "openclaw --profile work gateway install"},
            {"kind": "generic", "text": "openclaw --profile work gateway start"},
            {"kind": "generic", "text": "systemctl --user start openclaw-gateway-work.service"},
        ],
    }
    assert do_start(make_ctx(tmp_path / "m", platform="darwin")) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Tip: launchctl bootstrap gui/$UID ~/Library/LaunchAgents/ai.openclaw.gateway.plist"
    )
    assert do_start(make_ctx(tmp_path / "w", platform="win32", runner=FakeRunner({("schtasks",): (1, "", "")}))) == 1
    assert capsys.readouterr().out.splitlines()[-1] == 'Tip: schtasks /Run /TN "OpenClaw Gateway"'
    assert do_start(make_ctx(tmp_path, env={"OPENCLAW_CONTAINER": "gw1"}), json_=True) == 1
    assert _json(capsys)["hintItems"] == [
        {"kind": "container-restart", "text": "Restart the container or the service that manages it for gw1."}
    ]


def test_start_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    do_install(ctx, port=19123)
    runner.calls.clear()
    capsys.readouterr()
    runner.rules[("systemctl", "--user", "show")] = (0, "LoadState=loaded\nActiveState=inactive\nMainPID=0\n", "")
    assert do_start(ctx, json_=True) == 0
    assert _json(capsys) == {"action": "start", "ok": True, "result": "started", "service": SERVICE}
    assert runner.mutations() == [["systemctl", "--user", "reset-failed", UNIT], ["systemctl", "--user", "start", UNIT]]
    runner.rules[("systemctl", "--user", "show")] = RUNNING
    runner.calls.clear()
    assert do_start(ctx) == 0
    assert capsys.readouterr().out == "Gateway service already running (pid 4242).\n"
    assert runner.mutations() == []
    assert do_start(ctx, json_=True) == 0
    assert _json(capsys)["result"] == "already-running"
    assert _audit(ctx) == [
        "source=cli action=install mode=systemd-install interactive=0",
        "source=cli action=start mode=systemctl-start interactive=0",
    ]


def test_system_scope_unit_start_is_refused_for_non_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner({("systemctl", "show"): (0, "LoadState=loaded\nActiveState=inactive\n", "")})
    ctx = make_ctx(tmp_path, runner=runner)
    system_unit = tmp_path / "etc-systemd-system" / UNIT
    system_unit.parent.mkdir()
    system_unit.write_text("[Service]\nExecStart=/bin/true --port 19123\n")
    assert do_start(ctx) == 1
    assert capsys.readouterr().err == (
        f"Gateway start failed: {UNIT} is a system-scope unit ({system_unit}); "
        f"run `sudo systemctl start {UNIT}` to start it\n"
    )
    assert do_restart(ctx) == 1
    assert capsys.readouterr().err == (
        f"Gateway restart failed: {UNIT} is a system-scope unit ({system_unit}); "
        f"run `sudo systemctl restart {UNIT}` to restart it\n"
    )
    assert runner.mutations() == []


# --------------------------------------------------------------------------- restart


def test_restart_checks_health(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probed: list[int] = []
    outcome = {"value": "ready"}

    def probe(port: int) -> str:
        probed.append(port)
        return outcome["value"]

    runner = FakeRunner({("systemctl", "--user", "show"): RUNNING})
    ctx = make_ctx(tmp_path, runner=runner, probe=probe)
    do_install(ctx, port=19123)
    capsys.readouterr()
    runner.calls.clear()
    assert do_restart(ctx, json_=True) == 0
    assert _json(capsys) == {"action": "restart", "ok": True, "result": "restarted", "service": SERVICE}
    assert runner.mutations() == [
        ["systemctl", "--user", "reset-failed", UNIT],
        ["systemctl", "--user", "restart", UNIT],
    ]
    assert probed == [19123]
    assert _audit(ctx)[-1] == "source=cli action=restart mode=systemctl-restart pid=4242 interactive=0"

    outcome["value"] = "down"
    assert do_restart(ctx, json_=True) == 1
    assert _json(capsys) == {
        "action": "restart",
        "ok": False,
        "result": "restart-health-failed",
        "error": "Gateway restart timed out after 5s waiting for health checks.",
        "hints": ["openclaw gateway status --deep", "openclaw doctor"],
        "hintItems": [
            {"kind": "generic", "text": "openclaw gateway status --deep"},
            {"kind": "generic", "text": "openclaw doctor"},
        ],
        "warnings": ["Timed out after 5s waiting for gateway port 19123 to become healthy."],
    }
    outcome["value"] = "starting"
    assert do_restart(ctx) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "Gateway service is still starting after 5s. Last observed startup phase: unknown. "
        "Run openclaw gateway status --deep.\n"
    )
    assert (
        captured.out
        == f"Restarted systemd service: {UNIT}\nTip: openclaw gateway status --deep\nTip: openclaw doctor\n"
    )


def test_restart_flag_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    cases = [
        (
            {"safe": True, "force": True},
            "--safe cannot be combined with --force; omit --safe to begin a forced restart",
        ),
        ({"skip_deferral": True}, "--skip-deferral requires --safe"),
        ({"safe": True, "wait": "5m"}, "--safe cannot be combined with --wait; safe restart uses gateway deferral"),
        ({"force": True, "wait": "5m"}, "--force cannot be combined with --wait"),
        ({"wait": "5x"}, 'Invalid duration: "5x". Use values like 500ms, 30s, 5m, 2h, or 1h30m.'),
        (
            {"wait": "5m 30s"},
            'Invalid duration (each composite segment needs a unit): "5m 30s". Use values like 500ms, 30s, 5m, 2h, or 1h30m.',
        ),
    ]
    for flags, message in cases:
        assert do_restart(ctx, **flags) == 1
        assert capsys.readouterr().err == message + "\n"
    assert runner.calls == []
    assert [parse_duration_ms(v) for v in ("0", "500", "30s", "1h30m", "1.5s", "2d")] == [
        0,
        500,
        30_000,
        5_400_000,
        1_500,
        172_800_000,
    ]


def test_restart_in_place_by_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """External supervisor (and --safe, and a foreground gateway): SIGUSR2 to the state-lock owner."""
    sent: list[tuple[int, int]] = []
    ctx = make_ctx(tmp_path, env={"OPENCLAW_SUPERVISOR_MODE": "external"})
    ctx.send_signal = lambda pid, sig: sent.append((pid, sig))
    assert do_restart(ctx) == 1
    assert capsys.readouterr().err.startswith("Gateway restart failed: no running gateway holds ")
    lock = ctx.state_dir / "gateway.lock"
    lock.write_text("4242\n19123\n")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert do_restart(ctx, json_=True) == 0
        assert _json(capsys) == {
            "action": "restart",
            "ok": True,
            "result": "restarted",
            "message": "Gateway restarted in place (pid 4242, SIGUSR2).",
            "service": SERVICE,
        }
        assert sent == [(4242, signal.SIGUSR2)]
        plain = make_ctx(tmp_path)  # no service installed, a foreground gateway holds the lock
        plain.send_signal = lambda pid, sig: sent.append((pid, sig))
        assert do_restart(plain) == 0 and len(sent) == 2
    finally:
        os.close(fd)
    assert _audit(ctx) == [
        "source=cli action=restart mode=signal pid=4242 interactive=0",
        "source=cli action=restart mode=signal pid=4242 interactive=0",
    ]


# --------------------------------------------------------------------------- uninstall


def test_uninstall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner()
    ctx = make_ctx(tmp_path, runner=runner)
    do_install(ctx, port=19123, token="tok")
    capsys.readouterr()
    runner.calls.clear()
    assert do_uninstall(ctx, json_=True) == 0
    assert _json(capsys) == {
        "action": "uninstall",
        "ok": True,
        "result": "uninstalled",
        "service": {**SERVICE, "loaded": False},
    }
    assert runner.calls == [["systemctl", "--user", "disable", "--now", UNIT], ["systemctl", "--user", "daemon-reload"]]
    assert not (ctx.home / ".config/systemd/user" / UNIT).exists()
    assert (ctx.state_dir / "gateway.systemd.env").read_text() == ""
    assert do_uninstall(ctx) == 0
    assert capsys.readouterr().out == f"Systemd service not found at {ctx.home / '.config/systemd/user' / UNIT}\n"
    assert _audit(ctx)[-1] == "source=cli action=uninstall mode=systemd-uninstall interactive=0"
