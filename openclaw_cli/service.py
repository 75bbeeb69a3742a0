"""``openclaw gateway install|start|stop|restart|uninstall``: the gateway as a supervised service.

Linux: a systemd *user* unit ``openclaw-gateway[-<profile>].service`` driven through
``systemctl --user`` (runtime-cli.md §11.1, with the policy the issue fixes: Restart=always,
RestartSec=5, the timeouts, SuccessExitStatus=0 143, KillMode=control-group,
RestartPreventExitStatus=78). Secrets never go into the unit: a token given with ``--token`` is
written to the 0600 environment file the unit references. Units are written atomically with a
``.bak``. The launchd plist (macOS) and the Scheduled Task command (Windows) are rendered by the
same module; managing them from this build is Linux-only for now and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

ESCAPE_CHARS = (" ", "\t", '"', "\\")


def _profile() -> str | None:
    p = os.environ.get("OPENCLAW_PROFILE")
    return p if p and p.lower() != "default" else None


def unit_name(profile: str | None) -> str:
    return os.environ.get("OPENCLAW_SYSTEMD_UNIT") or (
        f"openclaw-gateway-{profile}.service" if profile else "openclaw-gateway.service"
    )


def launchd_label(profile: str | None) -> str:
    return f"ai.openclaw.{profile}" if profile else "ai.openclaw.gateway"


def windows_task(profile: str | None) -> str:
    return f"OpenClaw Gateway ({profile})" if profile else "OpenClaw Gateway"


def description(profile: str | None) -> str:
    return f"OpenClaw Gateway (profile: {profile})" if profile else "OpenClaw Gateway"


def _quote(arg: str) -> str:
    """systemd quoting: double-quote args with whitespace, quotes or backslashes; ``%`` → ``%%``."""
    arg = arg.replace("%", "%%")
    if any(c in arg for c in ESCAPE_CHARS):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def exec_start(port: int, allow_unconfigured: bool, python: str | None = None) -> list[str]:
    args = [python or sys.executable, "-m", "openclaw_cli", "gateway", "run", "--port", str(port)]
    if allow_unconfigured:
        args.append("--allow-unconfigured")
    return args


def service_environment(
    port: int, home: Path, profile: str | None, state_dir: Path, config_path: Path
) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "TMPDIR": "/tmp",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "OPENCLAW_GATEWAY_PORT": str(port),
        "OPENCLAW_SYSTEMD_UNIT": unit_name(profile),
        "OPENCLAW_SERVICE_MARKER": "openclaw",
        "OPENCLAW_SERVICE_KIND": "gateway",
    }
    if profile:
        env["OPENCLAW_PROFILE"] = profile
        env["OPENCLAW_STATE_DIR"] = str(state_dir)
        env["OPENCLAW_CONFIG_PATH"] = str(config_path)
    return env


def render_systemd_unit(*, argv: list[str], env: dict[str, str], env_file: Path, profile: str | None) -> str:
    """The unit text, policy lines in a fixed order."""
    lines = [
        "[Unit]",
        f"Description={description(profile)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitBurst=10",
        "StartLimitIntervalSec=300",
        "",
        "[Service]",
        "ExecStart=" + " ".join(_quote(a) for a in argv),
        "Restart=always",
        "RestartSec=5",
        "RestartPreventExitStatus=78",
        "TimeoutStopSec=330",
        "TimeoutStartSec=30",
        "SuccessExitStatus=0 143",
        "OOMPolicy=continue",
        "KillMode=control-group",
        f"EnvironmentFile=-{env_file}",
    ]
    lines += [f"Environment={_quote(f'{k}={v}')}" for k, v in env.items() if v]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def render_launchd_plist(*, label: str, argv: list[str], env: dict[str, str], log_path: Path) -> str:
    """The LaunchAgent plist (§11.3 policy keys)."""
    import plistlib

    doc = {
        "Label": label,
        "Comment": "OpenClaw Gateway",
        "RunAtLoad": True,
        "KeepAlive": True,
        "ExitTimeOut": 20,
        "ProcessType": "Interactive",
        "ThrottleInterval": 10,
        "Umask": 63,
        "StandardInPath": "/dev/null",
        "ProgramArguments": argv,
        "StandardOutPath": str(log_path),
        "StandardErrorPath": str(log_path),
        "EnvironmentVariables": env,
    }
    return plistlib.dumps(doc).decode()


def render_windows_task(*, name: str, argv: list[str]) -> list[str]:
    """The ``schtasks /Create`` command line for the logon task."""
    command = " ".join(f'"{a}"' if " " in a else a for a in argv)
    return ["schtasks", "/Create", "/F", "/SC", "ONLOGON", "/RL", "LIMITED", "/TN", name, "/TR", command]


class _Ctx:
    def __init__(self, port: int | None) -> None:
        from gateway_trio.settings import Paths, load_config

        self.profile = _profile()
        self.paths = Paths.resolve(None)
        cfg = load_config(self.paths.config_path) or {}
        gw = cfg.get("gateway") if isinstance(cfg.get("gateway"), dict) else {}
        self.port = port or (gw.get("port") if isinstance(gw.get("port"), int) else None) or 18789
        self.home = Path(os.environ.get("HOME") or Path.home())
        self.unit = unit_name(self.profile)
        self.unit_path = self.home / ".config" / "systemd" / "user" / self.unit
        self.env_file = self.paths.state_dir / "gateway.systemd.env"


def _systemctl(*args: str) -> tuple[bool, str]:
    exe = shutil.which("systemctl")
    if exe is None:
        return False, "systemctl not found"
    try:
        out = subprocess.run([exe, "--user", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return out.returncode == 0, (out.stderr or out.stdout).strip()


def _manual_steps(unit: str) -> list[str]:
    return [
        f"systemctl --user daemon-reload && systemctl --user enable --now {unit}",
        "On a headless host: sudo loginctl enable-linger $(whoami) and export XDG_RUNTIME_DIR=/run/user/$(id -u)",
        "Or run it in the foreground: openclaw gateway run",
    ]


def _emit(json_: bool, doc: dict[str, Any], lines: list[str], *, err: bool = False) -> int:
    if json_:
        print(json.dumps(doc))
    else:
        for line in lines:
            print(line, file=sys.stderr if err else sys.stdout)
    return 0 if doc.get("ok") else 1


Json = Annotated[bool, Parameter(name="--json", help="Machine-readable result.")]


def install(
    *,
    port: Annotated[int | None, Parameter(help="Port the service runs on (default: gateway.port, 18789).")] = None,
    token: Annotated[
        str | None, Parameter(help="Token for the service (kept in the 0600 env file, never in the unit).")
    ] = None,
    force: Annotated[bool, Parameter(help="Rewrite the unit even if it is up to date.")] = False,
    allow_unconfigured: bool = False,
    json_: Json = False,
) -> int:
    """Install the gateway as a systemd user service (enabled, started). A no-op when already installed, unless --force."""
    from gateway_trio.state import atomic_write

    if os.environ.get("OPENCLAW_SUPERVISOR_MODE") == "external":
        return _emit(
            json_,
            {"action": "install", "ok": False, "error": "OPENCLAW_SUPERVISOR_MODE=external: native install refused"},
            ["OPENCLAW_SUPERVISOR_MODE=external: native install refused"],
            err=True,
        )
    if not sys.platform.startswith("linux"):
        msg = f"managing the service on {sys.platform} is not supported by this build yet; run `openclaw gateway run` under your supervisor"
        return _emit(json_, {"action": "install", "ok": False, "error": msg}, [msg], err=True)
    ctx = _Ctx(port)
    env = service_environment(ctx.port, ctx.home, ctx.profile, ctx.paths.state_dir, ctx.paths.config_path)
    text = render_systemd_unit(
        argv=exec_start(ctx.port, allow_unconfigured), env=env, env_file=ctx.env_file, profile=ctx.profile
    )
    if ctx.unit_path.exists() and ctx.unit_path.read_text() == text and not force and token is None:
        return _emit(
            json_,
            {"action": "install", "ok": True, "result": "already-installed", "service": {"label": ctx.unit}},
            [f"Systemd service already installed: {ctx.unit_path}"],
        )
    if ctx.unit_path.exists():
        atomic_write(ctx.unit_path.with_name(ctx.unit_path.name + ".bak"), ctx.unit_path.read_bytes(), mode=0o644)
    atomic_write(ctx.unit_path, text.encode(), mode=0o644)
    if token is not None:
        atomic_write(ctx.env_file, f"OPENCLAW_GATEWAY_TOKEN={token}\n".encode(), mode=0o600)
    elif not ctx.env_file.exists():
        atomic_write(ctx.env_file, b"", mode=0o600)
    for step in (("daemon-reload",), ("enable", ctx.unit), ("restart", ctx.unit)):
        ok, detail = _systemctl(*step)
        if not ok:
            msg = f"systemctl --user unavailable: {detail}"
            lines = [
                f"Installed systemd service: {ctx.unit_path}",
                msg,
                "Manual steps:",
                *("  " + s for s in _manual_steps(ctx.unit)),
            ]
            return _emit(
                json_,
                {
                    "action": "install",
                    "ok": False,
                    "result": "installed-not-started",
                    "error": msg,
                    "hints": _manual_steps(ctx.unit),
                    "service": {"label": ctx.unit, "path": str(ctx.unit_path)},
                },
                lines,
                err=True,
            )
    return _emit(
        json_,
        {
            "action": "install",
            "ok": True,
            "result": "started",
            "service": {"label": ctx.unit, "path": str(ctx.unit_path)},
        },
        [f"Installed systemd service: {ctx.unit_path}", f"Started systemd service: {ctx.unit}"],
    )


def _lifecycle(action: str, steps: list[tuple[str, ...]], done: str, json_: bool) -> int:
    if not sys.platform.startswith("linux"):
        msg = f"managing the service on {sys.platform} is not supported by this build yet"
        return _emit(json_, {"action": action, "ok": False, "error": msg}, [msg], err=True)
    ctx = _Ctx(None)
    if not ctx.unit_path.exists():
        msg = f"Systemd service not found at {ctx.unit_path}"
        lines = [msg, "Tip: openclaw gateway install"]
        ok = action == "stop"  # stopping an absent service is a successful no-op
        return _emit(json_, {"action": action, "ok": ok, "result": "not-loaded", "message": msg}, lines, err=not ok)
    for step in steps:
        ok, detail = _systemctl(*[s.format(unit=ctx.unit) for s in step])
        if not ok and step[0] != "reset-failed":
            msg = f"systemctl --user unavailable: {detail}"
            return _emit(
                json_,
                {"action": action, "ok": False, "error": msg, "hints": _manual_steps(ctx.unit)},
                [msg, *("  " + s for s in _manual_steps(ctx.unit))],
                err=True,
            )
    return _emit(
        json_,
        {"action": action, "ok": True, "result": done, "service": {"label": ctx.unit}},
        [f"{done.capitalize()} systemd service: {ctx.unit}"],
    )


def start(*, json_: Json = False) -> int:
    """Start the installed service."""
    return _lifecycle("start", [("reset-failed", "{unit}"), ("start", "{unit}")], "started", json_)


def stop(
    *, force: Annotated[bool, Parameter(help="Required in a non-interactive shell.")] = False, json_: Json = False
) -> int:
    """Stop the installed service."""
    if not force and not sys.stdin.isatty():
        msg = (
            "This stops the operator's running gateway service. Use an isolated dev gateway (openclaw gateway run --dev, "
            "or --profile <name> with a free port) for testing, or re-run with --force if you really mean it."
        )
        return _emit(json_, {"action": "stop", "ok": False, "error": msg}, [msg], err=True)
    return _lifecycle("stop", [("stop", "{unit}")], "stopped", json_)


def restart(*, json_: Json = False) -> int:
    """Restart the installed service through systemd."""
    return _lifecycle("restart", [("reset-failed", "{unit}"), ("restart", "{unit}")], "restarted", json_)


def uninstall(*, json_: Json = False) -> int:
    """Disable, stop and remove the service unit."""
    ctx = _Ctx(None)
    if not ctx.unit_path.exists():
        msg = f"Systemd service not found at {ctx.unit_path}"
        return _emit(json_, {"action": "uninstall", "ok": True, "result": "not-loaded", "message": msg}, [msg])
    _systemctl("disable", "--now", ctx.unit)
    ctx.unit_path.unlink()
    ctx.unit_path.with_name(ctx.unit_path.name + ".bak").unlink(missing_ok=True)
    _systemctl("daemon-reload")
    return _emit(
        json_,
        {"action": "uninstall", "ok": True, "result": "uninstalled"},
        [f"Removed systemd service: {ctx.unit_path}"],
    )
