"""``openclaw gateway install|start|stop|restart|uninstall`` (and ``openclaw daemon …``): the gateway
as a supervised service (runtime-cli.md §10.6, §11).

One backend per service manager, all with the same interface (install/start/stop/restart/uninstall/
status) and all driving their manager through an injected command runner ``argv -> (returncode,
stdout, stderr)``, so tests pair a backend with a recording fake:

* :class:`SystemdBackend` (Linux): the user unit ``~/.config/systemd/user/openclaw-gateway[-<profile>].service``
  with the §11.1 policy as the issue fixes it (Restart=always, RestartSec=5, the timeouts,
  SuccessExitStatus=0 143, KillMode=control-group, RestartPreventExitStatus=78), driven with
  ``systemctl --user``. A unit of the same name in the system unit dir (``/etc/systemd/system``; the
  ``system_dir`` argument, or ``OPENCLAW_SYSTEMD_SYSTEM_DIR`` for the CLI) owns the profile (§11.2):
  the CLI never writes or activates a competing user unit, and start/stop/restart of the system unit
  by non-root fail with the sudo command to run. ``install --system`` renders the system unit
  (``User=`` added) and prints it with the sudo steps; it writes nothing, because operators install
  system units (§11.2).
* :class:`LaunchdBackend` (macOS): ``~/Library/LaunchAgents/<label>.plist`` (0644) running ``/bin/sh``
  with an owner-only wrapper (0700) that sources an owner-only env file (0600), then execs the gateway.
* :class:`SchtasksBackend` (Windows): the Scheduled Task ``OpenClaw Gateway[ (<profile>)]`` running
  ``<state>/gateway.cmd``; when task creation is denied, a Startup-folder launcher instead.

Secrets never go into a unit, plist, task or task script: ``--token`` lands only in the owner-only
env file, and nowhere at all when ``gateway.auth.token`` is a SecretRef (the gateway resolves it).
Definitions are written atomically. Every lifecycle mutation appends an audit line to
``<state>/logs/gateway-restart.log``.

Install identity (§10.6): service commands act only for the canonical install: HOME is the OS
account home, no ``OPENCLAW_HOME``, ``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH`` unset or canonical.
``OPENCLAW_SERVICE_ACCOUNT_HOME`` names the account home where the passwd entry is the wrong answer
(a container, or a test's throwaway HOME).
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import os
import plistlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from cyclopts import Parameter

from gateway_trio.runtime import lock_owner

Runner = Callable[[Sequence[str]], tuple[int, str, str]]

TOKEN_KEY = "OPENCLAW_GATEWAY_TOKEN"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
LAUNCH_DAEMON_DIR = Path("/Library/LaunchDaemons")
SERVICE_PATH = {"darwin": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin"}
DEFAULT_SERVICE_PATH = "/usr/local/bin:/usr/bin:/bin"
SELECTOR_KEYS = {
    "linux": "OPENCLAW_SYSTEMD_UNIT",
    "darwin": "OPENCLAW_LAUNCHD_LABEL",
    "win32": "OPENCLAW_WINDOWS_TASK_NAME",
}
PLATFORM_NAMES = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}
ESCAPE_CHARS = (" ", "\t", '"', "\\")
HEALTH_DELAY_S = 0.5
DEFAULT_HEALTH_TIMEOUT_S = 60.0

NON_INTERACTIVE_STOP = (
    "This stops the operator's running gateway service. Use an isolated dev gateway (openclaw gateway run --dev, "
    "or --profile <name> with a free port) for testing, or re-run with --force if you really mean it."
)
NON_DEFAULT_IDENTITY = (
    "service management skipped: {cause}. Rerun with HOME set to the OS account home, "
    "without OPENCLAW_HOME, and with OPENCLAW_STATE_DIR and OPENCLAW_CONFIG_PATH either unset or pointing at the "
    "canonical paths for that account home and profile to {action}{override}."
)
#: What service commands require of the environment, for their --help (issue 9 item 11).
IDENTITY_HELP = (
    "Service commands act only for the account's canonical install: HOME is the OS account home (from the "
    "password database), OPENCLAW_HOME is unset, and OPENCLAW_STATE_DIR/OPENCLAW_CONFIG_PATH are unset or "
    "canonical for the profile. To manage a service for another HOME (a container whose passwd home is wrong, "
    "a throwaway HOME), set OPENCLAW_SERVICE_ACCOUNT_HOME to that HOME."
)
ACTION_PROSE = {
    "install": "install or rewrite the gateway service",
    "start": "start the gateway",
    "stop": "stop the gateway",
    "restart": "restart the gateway",
    "uninstall": "uninstall the gateway service",
    "repair": "repair the gateway service installation",
}
SYSTEMD_UNAVAILABLE_PATTERNS = (
    "failed to connect to bus",
    "no medium found",
    "not been booted with systemd",
    "failed to connect to user scope bus",
    "dbus_session_bus_address",
    "xdg_runtime_dir",
    "command not found",
    "no such file or directory",
)
#: runtime-cli.md §10.6 ``hintItems[].kind``: first matching pattern wins, else ``generic``.
HINT_KINDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(gateway|node) install\b|^Service not installed\. Run:"), "install"),
    (re.compile(r"^Restart the container or the service that manages it for "), "container-restart"),
    (re.compile(r"^systemd user services are unavailable;"), "systemd-unavailable"),
    (
        re.compile(r"^(On a headless server \(SSH/no desktop session\):|Also ensure XDG_RUNTIME_DIR is set:)"),
        "systemd-headless",
    ),
    (re.compile(r"^If you're in a container, run the gateway in the foreground instead of"), "container-foreground"),
    (
        re.compile(r"^(WSL2 needs systemd enabled:|Then run: wsl --shutdown|Verify: systemctl --user status)"),
        "wsl-systemd",
    ),
)
CLEAR_SECRET_RE = re.compile(r"OPENCLAW_GATEWAY_(TOKEN|PASSWORD)(=|</key>)")
PORT_RE = re.compile(r"--port(?:\s+|</string>\s*<string>)(\d+)")


# --------------------------------------------------------------------------- names


def _profile() -> str | None:
    p = os.environ.get("OPENCLAW_PROFILE")
    return p if p and p.lower() != "default" else None


def unit_name(profile: str | None) -> str:
    """systemd unit of a profile (the default profile may override it with ``OPENCLAW_SYSTEMD_UNIT``)."""
    override = os.environ.get("OPENCLAW_SYSTEMD_UNIT", "").strip()
    if override and not profile:
        return override if override.endswith(".service") else f"{override}.service"
    return f"openclaw-gateway-{profile}.service" if profile else "openclaw-gateway.service"


def launchd_label(profile: str | None) -> str:
    override = os.environ.get("OPENCLAW_LAUNCHD_LABEL", "").strip()
    if override and not profile:
        return override
    return f"ai.openclaw.{profile}" if profile else "ai.openclaw.gateway"


def windows_task(profile: str | None) -> str:
    override = os.environ.get("OPENCLAW_WINDOWS_TASK_NAME", "").strip()
    if override and not profile:
        return override
    return f"OpenClaw Gateway ({profile})" if profile else "OpenClaw Gateway"


def description(profile: str | None) -> str:
    return f"OpenClaw Gateway (profile: {profile})" if profile else "OpenClaw Gateway"


def _derived_name(platform: str, profile: str | None) -> str:
    if platform == "darwin":
        return f"ai.openclaw.{profile}" if profile else "ai.openclaw.gateway"
    if platform == "win32":
        return f"OpenClaw Gateway ({profile})" if profile else "OpenClaw Gateway"
    return f"openclaw-gateway-{profile}.service" if profile else "openclaw-gateway.service"


def cli_command(command: str, profile: str | None) -> str:
    """``openclaw <command>`` as the operator should type it for this profile (``--dev`` for dev)."""
    from gateway_trio.runtime import cli_command as for_profile

    return for_profile(command, profile)


# --------------------------------------------------------------------------- command runner


def run_command(argv: Sequence[str], timeout: float = 30.0) -> tuple[int, str, str]:
    """Run a service-manager command (bounded); 127 when it is not installed, 124 on timeout."""
    exe = shutil.which(argv[0])
    if exe is None:
        return 127, "", f"{argv[0]}: command not found"
    try:
        done = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} timed out after {timeout:g}s"
    except OSError as exc:
        return 126, "", str(exc)
    return done.returncode, done.stdout, done.stderr


def _detail(out: str, err: str) -> str:
    return " ".join((err or out).split())[:1000]


# --------------------------------------------------------------------------- the gateway command + env


def exec_start(port: int, allow_unconfigured: bool, python: str | None = None) -> list[str]:
    """The gateway command a service runs."""
    args = [python or sys.executable, "-m", "openclaw_cli", "gateway", "run", "--port", str(port)]
    if allow_unconfigured:
        args.append("--allow-unconfigured")
    return args


def dev_root() -> Path | None:
    """The source checkout this CLI runs from (a dev install), else None: the unit's WorkingDirectory."""
    root = Path(__file__).resolve().parent.parent
    if any(part in ("site-packages", "dist-packages") for part in root.parts):
        return None
    return root if (root / "pyproject.toml").exists() else None


def service_environment(
    port: int,
    home: Path,
    profile: str | None,
    state_dir: Path,
    config_path: Path,
    *,
    selector: tuple[str, str] | None = None,
    platform: str = "linux",
) -> dict[str, str]:
    """The non-secret environment a service runs with (§11.1), in the order the unit lists it."""
    env: dict[str, str] = {"HOME": str(home)}
    if platform != "win32":
        env["TMPDIR"] = "/tmp"
        env["PATH"] = SERVICE_PATH.get(platform, DEFAULT_SERVICE_PATH)
    env["OPENCLAW_GATEWAY_PORT"] = str(port)
    key, value = selector or ("OPENCLAW_SYSTEMD_UNIT", unit_name(profile))
    env[key] = value
    env["OPENCLAW_SERVICE_MARKER"] = "openclaw"
    env["OPENCLAW_SERVICE_KIND"] = "gateway"
    if profile:
        env["OPENCLAW_PROFILE"] = profile
        env["OPENCLAW_STATE_DIR"] = str(state_dir)
        env["OPENCLAW_CONFIG_PATH"] = str(config_path)
    return env


# --------------------------------------------------------------------------- systemd rendering


def _quote(arg: str) -> str:
    """systemd quoting: double-quote args with whitespace, quotes or backslashes; ``%`` → ``%%``."""
    arg = arg.replace("%", "%%")
    if any(c in arg for c in ESCAPE_CHARS):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render_systemd_unit(
    *,
    argv: Sequence[str],
    env: Mapping[str, str],
    env_file: Path,
    profile: str | None,
    working_dir: Path | None = None,
    user: str | None = None,
) -> str:
    """The unit text, policy lines in a fixed order; ``user`` (a system unit) adds ``User=``."""
    lines = [
        "[Unit]",
        f"Description={description(profile)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitBurst=10",
        "StartLimitIntervalSec=300",
        "",
        "[Service]",
    ]
    if user:
        lines.append(f"User={user}")
    lines += [
        "ExecStart=" + " ".join(_quote(a) for a in argv),
        "Restart=always",
        "RestartSec=5",
        "RestartPreventExitStatus=78",
        "TimeoutStopSec=330",
        "TimeoutStartSec=30",
        "SuccessExitStatus=0 143",
        "OOMPolicy=continue",
        "KillMode=control-group",
    ]
    if working_dir is not None:
        lines.append(f"WorkingDirectory={_quote(str(working_dir))}")
    lines.append(f"EnvironmentFile=-{env_file}")
    lines += [f"Environment={_quote(f'{k}={v}')}" for k, v in env.items() if v]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def _env_value(value: str) -> str:
    if value and not re.search(r"[\s\"'\\$`#]", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (systemd EnvironmentFile), comments and blanks skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = re.sub(r"\\(.)", r"\1", value[1:-1]) if value[0] == '"' else value[1:-1]
        out[key.strip()] = value
    return out


def render_env_file(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={_env_value(v)}\n" for k, v in values.items())


# --------------------------------------------------------------------------- launchd rendering

#: ``LAUNCH_AGENT_POLICY`` (§11.3), in plist order.
LAUNCH_AGENT_POLICY: tuple[tuple[str, bool | int | str], ...] = (
    ("RunAtLoad", True),
    ("KeepAlive", True),
    ("ExitTimeOut", 20),
    ("ProcessType", "Interactive"),
    ("ThrottleInterval", 10),
    ("Umask", 63),
    ("StandardInPath", "/dev/null"),
)
LAUNCH_AGENT_ENV_HEADER = "# Generated by OpenClaw. Do not edit while the gateway service is installed."
LAUNCH_AGENT_WRAPPER = f"""#!/bin/sh
set -eu
invalid_env() {{
  echo "Invalid LaunchAgent environment file; run openclaw gateway install --force to repair the service." >&2
  exit 78
}}
[ "$#" -ge 2 ] || invalid_env
env_file="$1"
shift
[ -f "$env_file" ] && [ -r "$env_file" ] || invalid_env
IFS= read -r env_header < "$env_file" || invalid_env
[ "$env_header" = '{LAUNCH_AGENT_ENV_HEADER}' ] || invalid_env
. "$env_file"
exec "$@"
"""


def _xml(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def _plist_value(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "<true/>" if value else "<false/>"
    if isinstance(value, int):
        return f"<integer>{value}</integer>"
    return f"<string>{_xml(value)}</string>"


def render_launchd_plist(
    *,
    label: str,
    comment: str,
    argv: Sequence[str],
    log_path: Path,
    working_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The LaunchAgent plist: Label, Comment, the §11.3 policy keys, ProgramArguments, logs, env."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
        '<plist version="1.0">',
        "  <dict>",
        "    <key>Label</key>",
        f"    <string>{_xml(label)}</string>",
        "    <key>Comment</key>",
        f"    <string>{_xml(comment)}</string>",
    ]
    for key, value in LAUNCH_AGENT_POLICY:
        lines += [f"    <key>{key}</key>", f"    {_plist_value(value)}"]
    lines += ["    <key>ProgramArguments</key>", "    <array>"]
    lines += [f"      <string>{_xml(a)}</string>" for a in argv]
    lines.append("    </array>")
    if working_dir is not None:
        lines += ["    <key>WorkingDirectory</key>", f"    <string>{_xml(str(working_dir))}</string>"]
    for key in ("StandardOutPath", "StandardErrorPath"):
        lines += [f"    <key>{key}</key>", f"    <string>{_xml(str(log_path))}</string>"]
    if env:
        lines += ["    <key>EnvironmentVariables</key>", "    <dict>"]
        for k, v in env.items():
            lines += [f"      <key>{_xml(k)}</key>", f"      <string>{_xml(v)}</string>"]
        lines.append("    </dict>")
    lines += ["  </dict>", "</plist>", ""]
    return "\n".join(lines)


def _sh_single(value: str) -> str:
    """POSIX single quoting: ``it's`` → ``'it'\\''s'``."""
    return "'" + value.replace("'", "'\\''") + "'"


def render_launchd_env_file(values: Mapping[str, str]) -> str:
    """The owner-only env file the wrapper sources: a header line, then sorted ``export K='v'``."""
    body = [f"export {k}={_sh_single(v)}" for k, v in sorted(values.items()) if v]
    return "\n".join([LAUNCH_AGENT_ENV_HEADER, *body, ""])


def parse_launchd_env_file(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^export ([A-Za-z_][A-Za-z0-9_]*)='(.*)'$", line.strip())
        if m:
            out[m.group(1)] = m.group(2).replace("'\\''", "'")
    return out


# --------------------------------------------------------------------------- Windows rendering


def _cmd_quote(arg: str) -> str:
    """cmd.exe script quoting: ``"`` → ``\\"``, ``%`` → ``%%``, ``!`` → ``^!``; quoted when needed."""
    if not arg:
        return '""'
    escaped = arg.replace('"', '\\"').replace("%", "%%").replace("!", "^!")
    return f'"{escaped}"' if re.search(r'[ \t"&|<>^()%!]', arg) else escaped


def _cmd_set(key: str, value: str) -> str:
    def esc(s: str) -> str:
        return s.replace("^", "^^").replace("!", "^!").replace("%", "%%").replace('"', '^"')

    return f'set "{esc(key)}={esc(value)}"'


def render_task_script(
    *,
    argv: Sequence[str],
    env: Mapping[str, str],
    env_script: Path,
    profile: str | None,
    working_dir: Path | None = None,
) -> str:
    """``<state>/gateway.cmd``: non-secret env, the owner-only secret script, then the gateway (CRLF)."""
    lines = ["@echo off", f"rem {description(profile)}"]
    if working_dir is not None:
        lines.append(f"cd /d {_cmd_quote(str(working_dir))}")
    lines += [_cmd_set(k, v) for k, v in env.items() if v and k.upper() != "PATH"]
    lines.append(f"if exist {_cmd_quote(str(env_script))} call {_cmd_quote(str(env_script))}")
    lines.append(" ".join(_cmd_quote(a) for a in argv) + " < NUL")
    return "\r\n".join(lines) + "\r\n"


def render_task_env_script(values: Mapping[str, str]) -> str:
    return "\r\n".join(["@echo off", *(_cmd_set(k, v) for k, v in values.items() if v)]) + "\r\n"


def parse_task_env_script(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r'^set "([^=]+)=(.*)"$', line.strip())
        if m:
            out[m.group(1)] = re.sub(r"\^(.)", r"\1", m.group(2)).replace("%%", "%")
    return out


def render_startup_launcher(*, script: Path, profile: str | None) -> str:
    """The Startup-folder fallback: start ``gateway.cmd`` minimised at logon."""
    return (
        "\r\n".join(
            ["@echo off", f"rem {description(profile)}", f'start "" /min cmd.exe /d /c {_cmd_quote(str(script))}']
        )
        + "\r\n"
    )


def render_windows_task(*, name: str, script: Path) -> list[str]:
    """The ``schtasks /Create`` command for the logon task that runs ``script``."""
    target = str(script)
    if re.search(r'[ \t"]', target):
        target = '"' + target.replace('"', '\\"') + '"'
    return ["schtasks", "/Create", "/F", "/SC", "ONLOGON", "/RL", "LIMITED", "/TN", name, "/TR", target]


# --------------------------------------------------------------------------- backends


@dataclass
class ServiceSpec:
    """What to install: the gateway command, its non-secret env, and the token (owner-only files only)."""

    profile: str | None
    port: int
    argv: list[str]
    env: dict[str, str]
    working_dir: Path | None = None
    token: str | None = None
    #: Drop a stored token (the config's SecretRef owns the credential).
    clear_token: bool = False


@dataclass
class Status:
    loaded: bool
    state: str = "unknown"  # running | stopped | unknown
    pid: int | None = None
    detail: str = ""


class ServiceError(Exception):
    """A service-manager failure: the message, hints for the operator, an optional JSON result."""

    def __init__(self, message: str, hints: Sequence[str] = (), result: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hints = list(hints)
        self.result = result


def _write(path: Path, text: str, mode: int) -> None:
    from gateway_trio.runtime import atomic_write

    atomic_write(path, text.encode(), mode=mode)


def _read(path: Path) -> str | None:
    """The file's text exactly (no newline translation: task scripts are CRLF), None when unreadable."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def definition_port(text: str | None) -> int | None:
    m = PORT_RE.search(text or "")
    return int(m.group(1)) if m else None


def system_ownership_message(unit: str, path: Path, root: bool) -> str:
    """§11.2: why a user unit may not compete with the system unit of the same name."""
    sudo = "" if root else "sudo "
    return "\n".join(
        [
            f"System systemd unit {path} already owns this gateway unit name.",
            "Refusing to create or activate a user systemd unit with the same name because duplicate managers can restart-loop the gateway.",
            "OpenClaw does not manage system-scope units, and --force does not override system ownership.",
            f"Keep it as the sole gateway manager, or run `{sudo}systemctl disable --now {unit}`, `{sudo}rm {shlex.quote(str(path))}`, and `{sudo}systemctl daemon-reload` before retrying.",
        ]
    )


def systemd_unavailable_hints(unit: str, container: bool = False) -> list[str]:
    hints = ["systemd user services are unavailable; install/enable systemd or run the gateway under your supervisor."]
    if not container:
        hints += [
            "On a headless server (SSH/no desktop session): run `sudo loginctl enable-linger $(whoami)` to persist your systemd user session across logins.",
            "Also ensure XDG_RUNTIME_DIR is set: `export XDG_RUNTIME_DIR=/run/user/$(id -u)`, then retry.",
        ]
    hints += [
        "If you're in a container, run the gateway in the foreground instead of `openclaw gateway`.",
        f"Once the user manager is reachable: systemctl --user daemon-reload && systemctl --user enable --now {unit}",
    ]
    return hints


class Backend:
    """One service manager. Methods that mutate append human lines to ``out`` and return the audit mode."""

    kind: ClassVar[str]
    label: ClassVar[str]
    loaded_text: ClassVar[str]
    not_loaded_text: ClassVar[str]
    #: Whether ``stop`` unloads the job (launchd bootout) or leaves it enabled/registered.
    stop_unloads: ClassVar[bool] = False
    name: str
    definition_path: Path
    #: The owner-only file holding the token.
    secret_path: Path

    def installed(self) -> bool:
        return self.definition_path.exists()

    def definition(self) -> str | None:
        return _read(self.definition_path)

    def render(self, spec: ServiceSpec) -> str:
        raise NotImplementedError

    def program_of(self, text: str) -> str | None:
        """The program the installed definition runs (the drift check compares it with this install)."""
        raise NotImplementedError

    def stored_token(self) -> str | None:
        raise NotImplementedError

    def owner_conflict(self) -> str | None:
        """Why a system-level job of the same name forbids managing this one (None when there is none)."""
        return None

    def status(self) -> Status:
        raise NotImplementedError

    def install(self, spec: ServiceSpec, out: list[str]) -> str:
        raise NotImplementedError

    def rewrite(self, spec: ServiceSpec, out: list[str]) -> str:
        """Write the definition again and make the manager pick it up (doctor --fix)."""
        raise NotImplementedError

    def start(self, out: list[str]) -> str:
        raise NotImplementedError

    def stop(self, out: list[str], *, disable: bool = False) -> str:
        raise NotImplementedError

    def restart(self, out: list[str]) -> str:
        raise NotImplementedError

    def uninstall(self, out: list[str]) -> str | None:
        raise NotImplementedError

    def start_hint(self) -> str:
        raise NotImplementedError


class SystemdBackend(Backend):
    """A systemd user unit driven with ``systemctl --user`` (§11.1), aware of a same-name system unit (§11.2)."""

    kind = "systemd"
    label = "systemd"
    loaded_text = "enabled"
    not_loaded_text = "disabled"

    def __init__(
        self,
        *,
        unit: str,
        home: Path,
        state_dir: Path,
        runner: Runner = run_command,
        system_dir: Path = SYSTEM_UNIT_DIR,
        is_root: bool = False,
    ) -> None:
        self.name = unit
        self.unit_path = home / ".config" / "systemd" / "user" / unit
        self.definition_path = self.unit_path
        self.system_unit_path = system_dir / unit
        self.env_file = state_dir / "gateway.systemd.env"
        self.secret_path = self.env_file
        self.runner = runner
        self.is_root = is_root

    # -- helpers
    def _ctl(self, *args: str, scope: str = "user") -> tuple[int, str, str]:
        argv = ["systemctl", "--user", *args] if scope == "user" else ["systemctl", *args]
        return self.runner(argv)

    def scope(self) -> str | None:
        if self.unit_path.exists():
            return "user"
        if self.system_unit_path.exists():
            return "system"
        return None

    def installed(self) -> bool:
        return self.scope() is not None

    def definition(self) -> str | None:
        scope = self.scope()
        return _read(self.system_unit_path if scope == "system" else self.unit_path)

    def _failure(self, verb: str, rc: int, detail: str) -> ServiceError:
        if rc == 127 or any(p in detail.lower() for p in SYSTEMD_UNAVAILABLE_PATTERNS):
            return ServiceError(f"systemctl --user unavailable: {detail}", systemd_unavailable_hints(self.name))
        return ServiceError(f"systemctl {verb} failed: {detail}".strip())

    def _run_steps(self, steps: Sequence[tuple[str, ...]], scope: str = "user") -> None:
        """Run ``steps``; a "unit not found" is retried once after another daemon-reload (§11.1)."""
        retried = False
        for step in steps:
            rc, o, e = self._ctl(*step, scope=scope)
            detail = _detail(o, e)
            if rc != 0 and not retried and step[0] != "daemon-reload" and _unit_not_found(detail):
                retried = True
                self._ctl("daemon-reload", scope=scope)
                rc, o, e = self._ctl(*step, scope=scope)
                detail = _detail(o, e)
            if rc != 0:
                raise self._failure(step[0], rc, detail)

    def _active_scope(self, action: str) -> str:
        """The scope to act in; a system unit needs root (§11.2)."""
        scope = self.scope() or "user"
        if scope == "system" and not self.is_root:
            raise ServiceError(
                f"{self.name} is a system-scope unit ({self.system_unit_path}); "
                f"run `sudo systemctl {action} {self.name}` to {action} it"
            )
        return scope

    def _write_secrets(self, spec: ServiceSpec) -> None:
        current = parse_env_file(_read(self.env_file) or "")
        if spec.token is not None:
            current[TOKEN_KEY] = spec.token
        elif spec.clear_token:
            current.pop(TOKEN_KEY, None)
        _write(self.env_file, render_env_file(current), 0o600)

    def _write_unit(self, spec: ServiceSpec) -> None:
        text = self.render(spec)
        old = _read(self.unit_path)
        if old is not None and old != text:
            _write(self.unit_path.with_name(self.unit_path.name + ".bak"), old, 0o644)
        _write(self.unit_path, text, 0o644)
        self._write_secrets(spec)

    # -- interface
    def render(self, spec: ServiceSpec, *, user: str | None = None) -> str:
        return render_systemd_unit(
            argv=spec.argv,
            env=spec.env,
            env_file=self.env_file,
            profile=spec.profile,
            working_dir=spec.working_dir,
            user=user,
        )

    def program_of(self, text: str) -> str | None:
        m = re.search(r"^ExecStart=(.*)$", text, re.MULTILINE)
        if not m:
            return None
        try:
            parts = shlex.split(m.group(1))
        except ValueError:
            return None
        return parts[0].replace("%%", "%") if parts else None

    def stored_token(self) -> str | None:
        return parse_env_file(_read(self.env_file) or "").get(TOKEN_KEY)

    def owner_conflict(self) -> str | None:
        if self.system_unit_path.exists():
            return system_ownership_message(self.name, self.system_unit_path, self.is_root)
        return None

    def status(self) -> Status:
        scope = self.scope()
        if scope is None:
            return Status(False)
        rc, o, e = self._ctl("is-enabled", self.name, scope=scope)
        loaded = rc == 0
        rc, o, e = self._ctl(
            "show",
            self.name,
            "--no-page",
            "--property",
            "Id,LoadState,ActiveState,SubState,Result,NRestarts,StartLimitBurst,MainPID,ExecMainStatus,"
            "ExecMainCode,KillMode,TasksCurrent,MemoryCurrent",
            scope=scope,
        )
        if rc != 0:
            return Status(loaded, "unknown", None, _detail(o, e))
        props = dict(line.split("=", 1) for line in o.splitlines() if "=" in line)
        if props.get("LoadState", "loaded") != "loaded":
            return Status(loaded, "unknown", None, f"Unit {self.name} is not visible in the user systemd manager.")
        active = props.get("ActiveState", "")
        state = "running" if active == "active" else "stopped" if active in ("inactive", "failed") else "unknown"
        main_pid = props.get("MainPID", "0")
        pid = int(main_pid) if main_pid.isdigit() and int(main_pid) > 0 else None
        return Status(loaded, state, pid, f"{active}/{props.get('SubState', '')}")

    def install(self, spec: ServiceSpec, out: list[str]) -> str:
        conflict = self.owner_conflict()
        if conflict:
            raise ServiceError(conflict)
        self._write_unit(spec)
        out.append(f"Installed systemd service: {self.unit_path}")
        try:
            self._run_steps([("daemon-reload",), ("enable", self.name), ("restart", self.name)])
        except ServiceError as exc:
            exc.result = "installed-not-started"
            exc.hints.append(
                f"The unit file stays at {self.unit_path} (and its env file at {self.env_file}) so it can be "
                f"enabled later; to remove it instead: rm {self.unit_path} {self.env_file}"
            )
            raise
        out.append(f"Started systemd service: {self.name}")
        return "systemd-install"

    def rewrite(self, spec: ServiceSpec, out: list[str]) -> str:
        conflict = self.owner_conflict()
        if conflict:
            raise ServiceError(conflict)
        running = self.status().state == "running"
        self._write_unit(spec)
        out.append(f"rewrote {self.unit_path}")
        try:
            self._run_steps([("daemon-reload",)])
            out.append("reloaded the user systemd manager")
            if running:
                self._run_steps([("reset-failed", self.name), ("restart", self.name)])
                out.append(f"restarted {self.name}")
        except ServiceError as exc:
            manual = f"systemctl --user daemon-reload && systemctl --user restart {self.name}"
            raise ServiceError(exc.message, [manual]) from None
        return "systemd-repair"

    def start(self, out: list[str]) -> str:
        scope = self._active_scope("start")
        self._ctl("reset-failed", self.name, scope=scope)
        self._run_steps([("start", self.name)], scope=scope)
        out.append(f"Started systemd service: {self.name}")
        return "systemctl-start"

    def stop(self, out: list[str], *, disable: bool = False) -> str:
        scope = self._active_scope("stop")
        self._run_steps([("stop", self.name)], scope=scope)
        out.append(f"Stopped systemd service: {self.name}")
        return "systemctl-stop"

    def restart(self, out: list[str]) -> str:
        scope = self._active_scope("restart")
        self._ctl("reset-failed", self.name, scope=scope)
        self._run_steps([("restart", self.name)], scope=scope)
        out.append(f"Restarted systemd service: {self.name}")
        return "systemctl-restart"

    def uninstall(self, out: list[str]) -> str | None:
        if not self.unit_path.exists():
            if self.system_unit_path.exists():
                raise ServiceError(
                    f"{self.name} is a system-scope unit ({self.system_unit_path}); run "
                    f"`sudo systemctl disable --now {self.name}` and `sudo rm {self.system_unit_path}` to uninstall it"
                )
            out.append(f"Systemd service not found at {self.unit_path}")
            return None
        self._ctl("disable", "--now", self.name)
        self.unit_path.unlink(missing_ok=True)
        self.unit_path.with_name(self.unit_path.name + ".bak").unlink(missing_ok=True)
        if self.env_file.exists():
            values = parse_env_file(_read(self.env_file) or "")
            values.pop(TOKEN_KEY, None)
            _write(self.env_file, render_env_file(values), 0o600)
        self._ctl("daemon-reload")
        out.append(f"Removed systemd service: {self.unit_path}")
        return "systemd-uninstall"

    def start_hint(self) -> str:
        return f"systemctl --user start {self.name}"


def _unit_not_found(detail: str) -> bool:
    low = detail.lower()
    return "not found" in low or "does not exist" in low


def _launchctl_not_loaded(detail: str) -> bool:
    d = detail.lower()
    return "no such process" in d or "could not find service" in d or "not found" in d


def _launchctl_already_loaded(rc: int, detail: str) -> bool:
    return rc == 130 or "already exists in domain" in detail.lower() or "already loaded" in detail.lower()


class LaunchdBackend(Backend):
    """A LaunchAgent in the user's GUI domain, run through an owner-only env wrapper (§11.3)."""

    kind = "launchd"
    label = "LaunchAgent"
    loaded_text = "loaded"
    not_loaded_text = "not loaded"
    stop_unloads = True

    def __init__(
        self,
        *,
        label: str,
        home: Path,
        state_dir: Path,
        uid: int,
        profile: str | None,
        runner: Runner = run_command,
        system_dir: Path = LAUNCH_DAEMON_DIR,
        sleep: Callable[[float], None] = time.sleep,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.name = label
        self.profile = profile
        self.plist_path = home / "Library" / "LaunchAgents" / f"{label}.plist"
        self.definition_path = self.plist_path
        self.env_dir = state_dir / "service-env"
        self.env_file = self.env_dir / f"{label}.env"
        self.secret_path = self.env_file
        self.wrapper = self.env_dir / f"{label}-env-wrapper.sh"
        self.log_path = (
            home / "Library" / "Logs" / "openclaw" / (f"gateway-{profile}.log" if profile else "gateway.log")
        )
        self.domain = f"gui/{uid}"
        self.target = f"gui/{uid}/{label}"
        self.daemon_path = system_dir / f"{label}.plist"
        self.runner = runner
        self.sleep = sleep
        self.stop_timeout_s = stop_timeout_s

    def _lc(self, *args: str) -> tuple[int, str]:
        rc, o, e = self.runner(["launchctl", *args])
        return rc, _detail(o, e)

    def render(self, spec: ServiceSpec) -> str:
        return render_launchd_plist(
            label=self.name,
            comment=description(spec.profile),
            argv=["/bin/sh", str(self.wrapper), str(self.env_file), *spec.argv],
            log_path=self.log_path,
            working_dir=spec.working_dir,
        )

    def program_of(self, text: str) -> str | None:
        try:
            args = plistlib.loads(text.encode()).get("ProgramArguments") or []
        except Exception:  # noqa: BLE001 - any malformed plist means "unknown"
            return None
        if len(args) > 3 and args[0] == "/bin/sh":
            return str(args[3])
        return str(args[0]) if args else None

    def stored_token(self) -> str | None:
        return parse_launchd_env_file(_read(self.env_file) or "").get(TOKEN_KEY)

    def owner_conflict(self) -> str | None:
        if self.daemon_path.exists():
            return (
                f"System LaunchDaemon {self.daemon_path} already owns this gateway label ({self.name}). Refusing to manage "
                "a user LaunchAgent with the same label because duplicate managers can restart-loop the gateway; "
                "--force does not bypass this."
            )
        return None

    def _check_owner(self) -> None:
        conflict = self.owner_conflict()
        if conflict:
            raise ServiceError(conflict)

    def _write_files(self, spec: ServiceSpec) -> None:
        token = spec.token if spec.token is not None else (None if spec.clear_token else self.stored_token())
        env = dict(spec.env)
        if token:
            env[TOKEN_KEY] = token
        self.plist_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.env_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        _write(self.env_file, render_launchd_env_file(env), 0o600)
        _write(self.wrapper, LAUNCH_AGENT_WRAPPER, 0o700)
        _write(self.plist_path, self.render(spec), 0o644)

    def _loaded(self) -> bool:
        return self._lc("print", self.target)[0] == 0

    def _activate(self) -> None:
        """§11.3 install/start: enable, bootstrap (already loaded is fine), kickstart."""
        self._lc("enable", self.target)
        rc, detail = self._lc("bootstrap", self.domain, str(self.plist_path))
        if rc != 0 and not _launchctl_already_loaded(rc, detail):
            low = detail.lower()
            if "domain does not support specified action" in low or "could not find domain for user gui" in low:
                raise ServiceError(
                    f"launchctl bootstrap failed: {detail}",
                    [
                        f"LaunchAgents need a logged-in macOS GUI session for this user ({self.domain}); sign in to the "
                        "desktop as that user and rerun the command."
                    ],
                )
            raise ServiceError(f"launchctl bootstrap failed: {detail}")
        rc, detail = self._lc("kickstart", self.target)
        if rc != 0:
            raise ServiceError(f"launchctl kickstart failed: {detail}")

    def status(self) -> Status:
        rc, o, e = self.runner(["launchctl", "print", self.target])
        if rc != 0:
            detail = _detail(o, e)
            return Status(False, "stopped" if _launchctl_not_loaded(detail) else "unknown", None, detail)
        state = re.search(r"^\s*state = (\S+)", o, re.MULTILINE)
        pid = re.search(r"^\s*pid = (\d+)", o, re.MULTILINE)
        running = (state and state.group(1) == "running") or (pid is not None and int(pid.group(1)) > 1)
        return Status(True, "running" if running else "stopped", int(pid.group(1)) if pid else None)

    def install(self, spec: ServiceSpec, out: list[str]) -> str:
        self._check_owner()
        self._write_files(spec)
        out.append(f"Installed LaunchAgent: {self.plist_path}")
        if self._loaded():
            self._lc("bootout", self.target)
        self._activate()
        out += [f"Started LaunchAgent: {self.target}", f"Logs: {self.log_path}"]
        return "launchd-install"

    def rewrite(self, spec: ServiceSpec, out: list[str]) -> str:
        self._check_owner()
        loaded = self._loaded()
        self._write_files(spec)
        out.append(f"rewrote {self.plist_path}")
        if loaded:
            self._lc("bootout", self.target)
            self._activate()
            out.append(f"reloaded {self.target}")
        return "launchd-repair"

    def start(self, out: list[str]) -> str:
        self._check_owner()
        self._activate()
        out.append(f"Started LaunchAgent: {self.target}")
        return "kickstart"

    def restart(self, out: list[str]) -> str:
        self._check_owner()
        rc, detail = self._lc("kickstart", "-k", self.target)
        if rc != 0:
            if not _launchctl_not_loaded(detail):
                raise ServiceError(f"launchctl kickstart failed: {detail}")
            self._activate()
        out.append(f"Restarted LaunchAgent: {self.target}")
        return "kickstart"

    def stop(self, out: list[str], *, disable: bool = False) -> str:
        self._check_owner()
        if disable:
            rc, detail = self._lc("disable", self.target)
            if rc != 0:
                out.append(f"Warning: launchctl disable failed; stopped without persisting disable: {detail}")
        rc, detail = self._lc("bootout", self.target)
        if rc != 0 and not _launchctl_not_loaded(detail):
            raise ServiceError(f"launchctl bootout failed: {detail}", [f"launchctl bootout {self.target}"])
        deadline = time.monotonic() + self.stop_timeout_s
        while self._loaded():
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"LaunchAgent stop did not complete: {self.target} is still loaded",
                    [f"launchctl bootout {self.target}"],
                )
            self.sleep(0.1)
        out.append(f"Stopped LaunchAgent: {self.target}")
        return "disable-bootout" if disable else "bootout"

    def uninstall(self, out: list[str]) -> str | None:
        self._check_owner()
        if not self.plist_path.exists():
            out.append(f"LaunchAgent not found at {self.plist_path}")
            return None
        self._lc("bootout", self.target)
        for path in (self.plist_path, self.env_file, self.wrapper):
            path.unlink(missing_ok=True)
        out.append(f"Removed LaunchAgent: {self.plist_path}")
        return "launchd-uninstall"

    def start_hint(self) -> str:
        return f"launchctl bootstrap gui/$UID ~/Library/LaunchAgents/{self.name}.plist"


def _sanitize_filename(name: str) -> str:
    return re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name)


def _startup_fallback(rc: int, detail: str) -> bool:
    """§11.4: task creation denied (or schtasks unusable) → the Startup-folder launcher."""
    low = detail.lower()
    return rc in (1, 124) or "access is denied" in low or "acceso denegado" in low or "timed out" in low


class SchtasksBackend(Backend):
    """A Scheduled Task running ``<state>/gateway.cmd`` at logon, or a Startup-folder launcher (§11.4)."""

    kind = "schtasks"
    label = "Scheduled Task"
    loaded_text = "registered"
    not_loaded_text = "missing"

    def __init__(
        self, *, task: str, state_dir: Path, startup_dir: Path, profile: str | None, runner: Runner = run_command
    ) -> None:
        self.name = task
        self.profile = profile
        self.state_dir = state_dir
        self.script_path = state_dir / "gateway.cmd"
        self.definition_path = self.script_path
        self.env_script = state_dir / "gateway.env.cmd"
        self.secret_path = self.env_script
        self.startup_entry = startup_dir / f"{_sanitize_filename(task)}.cmd"
        self.runner = runner

    def _st(self, *args: str) -> tuple[int, str, str]:
        return self.runner(["schtasks", *args])

    def _registered(self) -> bool:
        return self._st("/Query", "/TN", self.name)[0] == 0

    def installed(self) -> bool:
        return self.script_path.exists() and (self.startup_entry.exists() or self._registered())

    def render(self, spec: ServiceSpec) -> str:
        return render_task_script(
            argv=spec.argv, env=spec.env, env_script=self.env_script, profile=spec.profile, working_dir=spec.working_dir
        )

    def program_of(self, text: str) -> str | None:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            return None
        last = lines[-1].strip()
        if last.startswith('"'):
            end = last.find('"', 1)
            return last[1:end] if end > 0 else None
        return last.split(" ", 1)[0]

    def stored_token(self) -> str | None:
        return parse_task_env_script(_read(self.env_script) or "").get(TOKEN_KEY)

    def _lock_pid(self) -> int | None:
        first = (_read(self.state_dir / "gateway.lock") or "").split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    def _launch(self) -> None:
        rc, o, e = self.runner(["cmd.exe", "/d", "/c", str(self.startup_entry)])
        if rc != 0:
            raise ServiceError(f"could not launch {self.startup_entry}: {_detail(o, e)}")

    def _kill_fallback(self, out: list[str], verb: str) -> bool:
        pid = self._lock_pid()
        if pid is None:
            return False
        rc, o, e = self.runner(["taskkill", "/PID", str(pid), "/T", "/F"])
        if rc != 0:
            raise ServiceError(f"taskkill failed: {_detail(o, e)}")
        out.append(f"{verb} Windows login item: {self.name}")
        return True

    def _write_files(self, spec: ServiceSpec) -> None:
        values = parse_task_env_script(_read(self.env_script) or "")
        if spec.token is not None:
            values[TOKEN_KEY] = spec.token
        elif spec.clear_token:
            values.pop(TOKEN_KEY, None)
        _write(self.env_script, render_task_env_script(values), 0o600)
        _write(self.script_path, self.render(spec), 0o700)

    def status(self) -> Status:
        rc, o, e = self._st("/Query", "/TN", self.name, "/FO", "LIST", "/V")
        if rc == 0:
            m = re.search(r"^Status:\s*(.+)$", o, re.MULTILINE)
            value = m.group(1).strip().lower() if m else ""
            return Status(True, "running" if value == "running" else "stopped" if value else "unknown")
        if self.startup_entry.exists():
            pid = self._lock_pid()
            return Status(True, "unknown" if pid is None else "running", pid, "Startup-folder login item installed")
        return Status(False, "unknown", None, _detail(o, e))

    def install(self, spec: ServiceSpec, out: list[str]) -> str:
        self._write_files(spec)
        rc, o, e = self.runner(render_windows_task(name=self.name, script=self.script_path))
        if rc != 0:
            detail = _detail(o, e)
            if not _startup_fallback(rc, detail):
                raise ServiceError(f"schtasks create failed: {detail}")
            self.startup_entry.parent.mkdir(parents=True, exist_ok=True)
            _write(self.startup_entry, render_startup_launcher(script=self.script_path, profile=self.profile), 0o600)
            self._launch()
            out += [f"Installed Windows login item: {self.startup_entry}", f"Task script: {self.script_path}"]
            return "startup-entry-install"
        self.startup_entry.unlink(missing_ok=True)
        rc, o, e = self._st("/Run", "/TN", self.name)
        if rc != 0:
            raise ServiceError(f"schtasks run failed: {_detail(o, e)}", result="installed-not-started")
        out += [f"Installed Scheduled Task: {self.name}", f"Task script: {self.script_path}"]
        return "schtasks-install"

    def rewrite(self, spec: ServiceSpec, out: list[str]) -> str:
        self._write_files(spec)
        out.append(f"rewrote {self.script_path} (takes effect at the next task start)")
        return "schtasks-repair"

    def start(self, out: list[str]) -> str:
        if self._registered():
            rc, o, e = self._st("/Run", "/TN", self.name)
            if rc != 0:
                raise ServiceError(f"schtasks run failed: {_detail(o, e)}")
            out.append(f"Started Scheduled Task: {self.name}")
            return "schtasks-start"
        self._launch()
        out.append(f"Started Windows login item: {self.name}")
        return "startup-entry-start"

    def stop(self, out: list[str], *, disable: bool = False) -> str:
        if self._registered():
            rc, o, e = self._st("/End", "/TN", self.name)
            if rc != 0:
                raise ServiceError(f"schtasks end failed: {_detail(o, e)}")
            out.append(f"Stopped Scheduled Task: {self.name}")
            return "schtasks-stop"
        if not self._kill_fallback(out, "Stopped"):
            out.append(f"Windows login item not running: {self.name}")
        return "startup-entry-stop"

    def restart(self, out: list[str]) -> str:
        if self._registered():
            self._st("/End", "/TN", self.name)
            rc, o, e = self._st("/Run", "/TN", self.name)
            if rc != 0:
                raise ServiceError(f"schtasks run failed: {_detail(o, e)}")
            out.append(f"Restarted Scheduled Task: {self.name}")
            return "schtasks-restart"
        self._kill_fallback([], "Stopped")
        self._launch()
        out.append(f"Restarted Windows login item: {self.name}")
        return "startup-entry-restart"

    def uninstall(self, out: list[str]) -> str | None:
        mode = None
        if self._registered():
            self._st("/End", "/TN", self.name)
            rc, o, e = self._st("/Delete", "/F", "/TN", self.name)
            if rc != 0:
                raise ServiceError(f"schtasks delete failed: {_detail(o, e)}")
            out.append(f"Removed Scheduled Task: {self.name}")
            mode = "schtasks-uninstall"
        if self.startup_entry.exists():
            self._kill_fallback([], "Stopped")
            self.startup_entry.unlink()
            out.append(f"Removed Windows login item: {self.startup_entry}")
            mode = mode or "startup-entry-uninstall"
        for path in (self.script_path, self.env_script):
            path.unlink(missing_ok=True)
        if mode is None:
            out.append(f"Scheduled Task not found: {self.name}")
        return mode

    def start_hint(self) -> str:
        return f'schtasks /Run /TN "{self.name}"'


# --------------------------------------------------------------------------- context, policy


def _env_value_of(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() in ("", "undefined", "null") else value.strip()


def account_home(env: Mapping[str, str]) -> Path:
    """The OS account home (passwd), or ``OPENCLAW_SERVICE_ACCOUNT_HOME`` when set."""
    override = _env_value_of(env, "OPENCLAW_SERVICE_ACCOUNT_HOME")
    if override:
        return Path(override).expanduser()
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, AttributeError):
        return Path.home()


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def configured_port(config: Mapping[str, Any], profile: str | None, env: Mapping[str, str]) -> int:
    """The port a service should run on: ``OPENCLAW_GATEWAY_PORT`` → ``gateway.port`` → profile hash → 18789."""
    from gateway_trio.runtime import DEFAULT_PORT, fnv1a32

    raw = _env_value_of(env, "OPENCLAW_GATEWAY_PORT")
    if raw:
        tail = raw.rsplit(":", 1)[-1].strip("[]")
        if tail.isdigit() and 1 <= int(tail) <= 65535:
            return int(tail)
    gw = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    port = gw.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return port
    return 20000 + fnv1a32(profile) % 40000 if profile else DEFAULT_PORT


def token_secret_ref(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """``gateway.auth.token`` when it is a SecretRef (``{"source": "env"|"file"|"exec", ...}``)."""
    gw = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    auth = gw.get("auth") if isinstance(gw.get("auth"), dict) else {}
    token = auth.get("token")
    return token if isinstance(token, dict) and token.get("source") in ("env", "file", "exec") else None


def probe_readyz(port: int, timeout: float = 1.0) -> str:
    """``ready`` (GET /readyz → 200), ``starting`` (answers, not ready) or ``down`` (no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        resp.read()
        return "ready" if resp.status == 200 else "starting"
    except (OSError, http.client.HTTPException):
        return "down"
    finally:
        conn.close()


def audit(state_dir: Path, action: str, mode: str, *, pid: int | None, interactive: bool, source: str = "cli") -> None:
    """Append the §10.6 lifecycle audit line to ``<state>/logs/gateway-restart.log`` (best effort)."""
    now = _dt.datetime.now(_dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    fields = [f"source={source}", f"action={action}", f"mode={mode}"]
    if pid is not None:
        fields.append(f"pid={pid}")
    fields.append(f"interactive={1 if interactive else 0}")
    try:
        log = state_dir / "logs" / "gateway-restart.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"[{stamp}] openclaw gateway lifecycle {' '.join(fields)}\n")
    except OSError:
        pass


def make_backend(
    platform: str,
    *,
    profile: str | None,
    home: Path,
    state_dir: Path,
    env: Mapping[str, str],
    runner: Runner = run_command,
    is_root: bool = False,
) -> Backend | None:
    """The backend for ``platform`` (sys.platform), or None where no service manager is supported."""
    if platform.startswith("linux"):
        system_dir = Path(_env_value_of(env, "OPENCLAW_SYSTEMD_SYSTEM_DIR") or SYSTEM_UNIT_DIR)
        return SystemdBackend(
            unit=unit_name(profile),
            home=home,
            state_dir=state_dir,
            runner=runner,
            system_dir=system_dir,
            is_root=is_root,
        )
    if platform == "darwin":
        return LaunchdBackend(
            label=launchd_label(profile),
            home=home,
            state_dir=state_dir,
            uid=os.getuid(),
            profile=profile,
            runner=runner,
        )
    if platform == "win32":
        appdata = _env_value_of(env, "APPDATA")
        roaming = Path(appdata) if appdata else home / "AppData" / "Roaming"
        startup = roaming / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup"
        return SchtasksBackend(
            task=windows_task(profile), state_dir=state_dir, startup_dir=startup, profile=profile, runner=runner
        )
    return None


@dataclass
class Ctx:
    """Everything a lifecycle command needs; tests build one with tmp dirs and a fake runner."""

    profile: str | None
    home: Path
    state_dir: Path
    config_path: Path
    config: dict[str, Any]
    backend: Backend | None
    env: Mapping[str, str]
    platform: str = "linux"
    interactive: bool = False
    is_root: bool = False
    user: str = "openclaw"
    probe: Callable[[int], str] = probe_readyz
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    send_signal: Callable[[int, int], None] = os.kill
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    warnings: list[str] = field(default_factory=list)
    #: Why the config could not be read (a syntax error, with where and what), if it could not.
    config_error: Any = None

    @classmethod
    def current(cls, runner: Runner = run_command) -> Ctx:
        """The context of this process: profile, paths, config, the platform's backend."""
        from gateway_trio.runtime import Paths, StartupError, home_dir, load_config

        env = dict(os.environ)
        paths = Paths.resolve(None)
        home = home_dir()
        warnings: list[str] = []
        config_error = None
        try:
            config = load_config(paths.config_path) or {}
        except StartupError as exc:
            config = {}
            warnings.append(exc.summary)
            config_error = exc
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        backend = make_backend(
            sys.platform,
            profile=paths.profile,
            home=home,
            state_dir=paths.state_dir,
            env=env,
            runner=runner,
            is_root=is_root,
        )
        try:
            import getpass

            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no login name: a placeholder the operator edits
            user = "openclaw"
        return cls(
            profile=paths.profile,
            home=home,
            state_dir=paths.state_dir,
            config_path=paths.config_path,
            config=config,
            backend=backend,
            env=env,
            platform=sys.platform,
            interactive=sys.stdin.isatty() and sys.stdout.isatty(),
            is_root=is_root,
            user=user,
            warnings=warnings,
            config_error=config_error,
        )

    def cli(self, command: str) -> str:
        return cli_command(command, self.profile)

    def port(self) -> int:
        return configured_port(self.config, self.profile, self.env)


def supervisor_external(env: Mapping[str, str]) -> bool:
    return (_env_value_of(env, "OPENCLAW_SUPERVISOR_MODE") or "").lower() == "external"


def mutation_refusal(ctx: Ctx, action: str) -> str | None:
    """Why this process may not manage the service (§10.6 refusals), or None."""
    prose = ACTION_PROSE[action]
    if supervisor_external(ctx.env):
        return (
            "OpenClaw gateway lifecycle is managed by an external supervisor (OPENCLAW_SUPERVISOR_MODE=external). "
            f"Use that supervisor to {prose}."
        )
    key = next((k for p, k in SELECTOR_KEYS.items() if ctx.platform.startswith(p)), None)
    override = _env_value_of(ctx.env, key) if key else None
    if ctx.profile and key and override:
        derived = _derived_name(ctx.platform, ctx.profile)
        if override.removesuffix(".service") != derived.removesuffix(".service"):
            platform = next((n for p, n in PLATFORM_NAMES.items() if ctx.platform.startswith(p)), ctx.platform)
            return (
                f"service management skipped: named profiles cannot override {key} for {platform} service management. "
                f"Unset {key} so OpenClaw derives the native service identity from OPENCLAW_PROFILE to {prose}, "
                "or keep this profile runtime-only without a native service."
            )
    problem = install_identity_problem(ctx)
    if problem:
        return NON_DEFAULT_IDENTITY.format(cause=problem[0], action=prose, override=problem[1])
    return None


def install_identity_problem(ctx: Ctx) -> tuple[str, str] | None:
    """Why this is not the account's canonical install (§10.6), as (cause, how to override), or None."""
    if _env_value_of(ctx.env, "OPENCLAW_HOME"):
        return f"OPENCLAW_HOME is set ({_env_value_of(ctx.env, 'OPENCLAW_HOME')})", ""
    home_raw = _env_value_of(ctx.env, "HOME")
    home = Path(home_raw).expanduser() if home_raw else Path.home()
    account = account_home(ctx.env)
    if not _same_path(home, account):
        source = "OPENCLAW_SERVICE_ACCOUNT_HOME" if _env_value_of(ctx.env, "OPENCLAW_SERVICE_ACCOUNT_HOME") else "passwd"
        return (
            f"HOME ({home}) is not this account's home ({account}, from {source})",
            f", or set OPENCLAW_SERVICE_ACCOUNT_HOME={home} to manage a service for this HOME",
        )
    canonical = home / (f".openclaw-{ctx.profile}" if ctx.profile else ".openclaw")
    state = _env_value_of(ctx.env, "OPENCLAW_STATE_DIR")
    if state and not _same_path(Path(state).expanduser(), canonical):
        return f"OPENCLAW_STATE_DIR ({state}) is not this profile's state dir ({canonical})", ""
    config = _env_value_of(ctx.env, "OPENCLAW_CONFIG_PATH")
    if config and not _same_path(Path(config).expanduser(), canonical / "openclaw.json"):
        return f"OPENCLAW_CONFIG_PATH ({config}) is not this profile's config path ({canonical / 'openclaw.json'})", ""
    return None


def default_install_identity(ctx: Ctx) -> bool:
    """HOME is the account home, no OPENCLAW_HOME, state dir and config path canonical for the profile."""
    return install_identity_problem(ctx) is None


def nix_mode(env: Mapping[str, str]) -> bool:
    return _env_value_of(env, "OPENCLAW_NIX_MODE") == "1"


def start_hints(ctx: Ctx) -> list[str]:
    """The ``Tip:`` lines after "Gateway service <notLoadedText>." (§10.6)."""
    container = _env_value_of(ctx.env, "OPENCLAW_CONTAINER_HINT") or _env_value_of(ctx.env, "OPENCLAW_CONTAINER")
    if container:
        return [f"Restart the container or the service that manages it for {container}."]
    refusal = mutation_refusal(ctx, "install")
    hints = [f"Gateway install blocked: {refusal}" if refusal else ctx.cli("gateway install"), ctx.cli("gateway start")]
    if ctx.backend is not None:
        hints.append(ctx.backend.start_hint())
    return hints


def build_spec(
    ctx: Ctx,
    backend: Backend,
    port: int,
    allow_unconfigured: bool,
    token: str | None,
    warnings: list[str] | None = None,
) -> ServiceSpec:
    """The service to install for this context; what the operator should know lands in ``warnings``."""
    selector_key = next((k for p, k in SELECTOR_KEYS.items() if ctx.platform.startswith(p)), "OPENCLAW_SYSTEMD_UNIT")
    env = service_environment(
        port,
        ctx.home,
        ctx.profile,
        ctx.state_dir,
        ctx.config_path,
        selector=(selector_key, backend.name),
        platform="linux" if ctx.platform.startswith("linux") else ctx.platform,
    )
    ref = token_secret_ref(ctx.config)
    if ref is not None:
        if token is not None and warnings is not None:
            warnings.append(
                f"gateway.auth.token is a SecretRef (source={ref.get('source')}); the service resolves it at runtime, "
                "so --token was not stored."
            )
        token = None
    return ServiceSpec(
        profile=ctx.profile,
        port=port,
        argv=exec_start(port, allow_unconfigured),
        env=env,
        working_dir=dev_root(),
        token=token,
        clear_token=ref is not None,
    )


def definition_drift(ctx: Ctx, backend: Backend, text: str, want_port: int | None = None) -> list[str]:
    """How an installed definition differs from this install and config (port, program, token source)."""
    drift: list[str] = []
    want = ctx.port() if want_port is None else want_port
    have = definition_port(text)
    if have != want:
        drift.append(f"port {have} ({'config says' if want_port is None else 'requested'} {want})")
    program = backend.program_of(text)
    if program is not None and program != sys.executable:
        drift.append(f"program {program} (this install runs {sys.executable})")
    if CLEAR_SECRET_RE.search(text):
        drift.append("a gateway secret is written in the service definition (it belongs in the owner-only env file)")
    ref = token_secret_ref(ctx.config)
    if ref is not None and backend.stored_token():
        drift.append(
            f"token source: {backend.secret_path} holds {TOKEN_KEY} but gateway.auth.token is a SecretRef "
            f"(source={ref.get('source')})"
        )
    return drift


# --------------------------------------------------------------------------- output


def _hint_kind(text: str) -> str:
    return next((kind for pattern, kind in HINT_KINDS if pattern.search(text)), "generic")


class Reporter:
    """The §10.6 result: the JSON envelope, or human lines (stdout) and errors (stderr) with ``Tip:`` lines."""

    def __init__(self, action: str, json_: bool, backend: Backend | None, warnings: Sequence[str] = ()) -> None:
        self.action = action
        self.json = json_
        self.backend = backend
        self.warnings = list(warnings)

    def _service(self, loaded: bool) -> dict[str, Any] | None:
        if self.backend is None:
            return None
        return {
            "label": self.backend.label,
            "loaded": loaded,
            "loadedText": self.backend.loaded_text,
            "notLoadedText": self.backend.not_loaded_text,
        }

    def _emit(self, doc: dict[str, Any]) -> None:
        clean = {"action": self.action, **{k: v for k, v in doc.items() if v is not None}}
        print(json.dumps(clean))

    def ok(
        self,
        result: str,
        *,
        message: str | None = None,
        lines: Sequence[str] = (),
        loaded: bool = True,
        extra: Mapping[str, Any] | None = None,
        after: Sequence[str] = (),
    ) -> int:
        if self.json:
            self._emit(
                {
                    "ok": True,
                    "result": result,
                    "message": message,
                    "warnings": self.warnings or None,
                    "service": self._service(loaded),
                    **(extra or {}),
                }
            )
        else:
            for line in self.warnings:
                print(f"Warning: {line}")
            for line in [*lines, *([message] if message else []), *after]:
                print(line)
        return 0

    def fail(
        self, message: str, *, hints: Sequence[str] = (), result: str | None = None, lines: Sequence[str] = ()
    ) -> int:
        if self.json:
            self._emit(
                {
                    "ok": False,
                    "result": result,
                    "error": message,
                    "hints": list(hints) or None,
                    "hintItems": [{"kind": _hint_kind(h), "text": h} for h in hints] or None,
                    "warnings": self.warnings or None,
                }
            )
        else:
            for line in self.warnings:
                print(f"Warning: {line}")
            for line in lines:
                print(line)
            print(message, file=sys.stderr)
            for hint in hints:
                print(f"Tip: {hint}")
        return 2 if result == "still-starting" else 1


def _unsupported(ctx: Ctx) -> str:
    return f"Gateway service install not supported on {ctx.platform}"


# --------------------------------------------------------------------------- the lifecycle actions


def do_install(
    ctx: Ctx,
    *,
    port: int | None = None,
    token: str | None = None,
    force: bool = False,
    allow_unconfigured: bool = False,
    system: bool = False,
    json_: bool = False,
) -> int:
    """``gateway install``: write the definition (atomically), enable and start it; a no-op when loaded."""
    rep = Reporter("install", json_, ctx.backend, ctx.warnings)
    if nix_mode(ctx.env):
        return rep.fail("Nix mode detected; service install is disabled.")
    refusal = mutation_refusal(ctx, "install")
    if refusal:
        return rep.fail(f"Gateway install blocked: {refusal}")
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if port is not None and not 1 <= port <= 65535:
        return rep.fail("Invalid --port. Use a port number from 1 to 65535, for example 18789.")
    spec = build_spec(ctx, backend, port or ctx.port(), allow_unconfigured, token, rep.warnings)
    if system:
        return _render_system_unit(ctx, rep, spec)
    conflict = backend.owner_conflict()
    if conflict:
        return rep.fail(f"Gateway install blocked: {conflict}")
    if not force and backend.installed():
        status = backend.status()
        if status.loaded:
            current = backend.definition()
            if current is not None and current != backend.render(spec):
                drift = definition_drift(ctx, backend, current, spec.port)
                rep.warnings.append(
                    "The installed service definition differs from this install"
                    + (f": {'; '.join(drift)}" if drift else "")
                    + f"; run `{ctx.cli('gateway install --force')}` to rewrite it."
                )
            if token is not None and spec.token is not None:
                rep.warnings.append(f"--token was not stored; rerun with `{ctx.cli('gateway install --force')}`.")
            return rep.ok(
                "already-installed",
                message=f"Gateway service already {backend.loaded_text}.",
                after=[f"Reinstall with: {ctx.cli('gateway install --force')}"],
            )
    out: list[str] = []
    try:
        mode = backend.install(spec, out)
    except ServiceError as exc:
        return rep.fail(f"Gateway install failed: {exc.message}", hints=exc.hints, result=exc.result, lines=out)
    audit(ctx.state_dir, "install", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("installed", lines=out)


def _render_system_unit(ctx: Ctx, rep: Reporter, spec: ServiceSpec) -> int:
    """``install --system``: the system unit on stdout, the sudo steps on stderr (§11.2); nothing is written."""
    backend = ctx.backend
    if not isinstance(backend, SystemdBackend):
        return rep.fail("--system renders a systemd system unit; it is only available on Linux.")
    text = backend.render(spec, user=ctx.user)
    path = backend.system_unit_path
    if ctx.user == "root":
        rep.warnings.append("User=root: set User= to the non-root account that owns the state dir before installing.")
    steps = [
        f"{ctx.cli('gateway install --system')} | sudo tee {path} >/dev/null",
        f"sudo systemctl daemon-reload && sudo systemctl enable --now {backend.name}",
    ]
    if backend.unit_path.exists():
        steps.insert(0, f"{ctx.cli('gateway uninstall')}  # two managers for one gateway restart-loop it")
    if rep.json:
        return rep.ok("rendered", loaded=False, extra={"path": str(path), "unit": text, "steps": steps})
    print(text, end="")
    for line in rep.warnings:
        print(f"Warning: {line}", file=sys.stderr)
    print(f"System unit for {path} (not written). To install it:", file=sys.stderr)
    for step in steps:
        print(f"  {step}", file=sys.stderr)
    return 0


def do_start(ctx: Ctx, *, json_: bool = False) -> int:
    """``gateway start``: idempotent; not installed → ``Gateway service <notLoadedText>.`` and tips."""
    rep = Reporter("start", json_, ctx.backend, ctx.warnings)
    refusal = mutation_refusal(ctx, "start")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed():
        return rep.fail(f"Gateway service {backend.not_loaded_text}.", hints=start_hints(ctx))
    status = backend.status()
    if status.state == "running":
        message = (
            f"Gateway service already running (pid {status.pid})." if status.pid else "Gateway service already running."
        )
        return rep.ok("already-running", message=message)
    out: list[str] = []
    try:
        mode = backend.start(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway start failed: {exc.message}", hints=exc.hints or start_hints(ctx), lines=out)
    audit(ctx.state_dir, "start", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("started", lines=out)


def do_stop(ctx: Ctx, *, force: bool = False, disable: bool = False, json_: bool = False) -> int:
    """``gateway stop``: refused non-interactively without --force; an absent service is a no-op."""
    rep = Reporter("stop", json_, ctx.backend, ctx.warnings)
    refusal = mutation_refusal(ctx, "stop")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed() and not (disable and backend.kind == "launchd"):
        # Nothing to stop: say so, whatever the shell (no --force is needed to do nothing).
        return rep.ok(
            "not-loaded",
            message=f"No gateway service is installed ({backend.definition_path} does not exist); nothing to stop.",
            loaded=False,
        )
    if not force and not ctx.interactive:
        return rep.fail(NON_INTERACTIVE_STOP)
    status = backend.status()
    out: list[str] = []
    try:
        mode = backend.stop(out, disable=disable)
    except ServiceError as exc:
        return rep.fail(f"Gateway stop failed: {exc.message}", hints=exc.hints, lines=out)
    audit(ctx.state_dir, "stop", mode, pid=status.pid, interactive=ctx.interactive)
    return rep.ok("stopped", lines=out, loaded=status.loaded and not backend.stop_unloads)


DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(raw: str) -> int:
    """``500``, ``30s``, ``1h30m`` → milliseconds (``0`` = indefinitely); ValueError with the §10.6 text."""

    def invalid(reason: str | None = None) -> ValueError:
        shown = f'"{raw}"' if raw.strip() else "empty value"
        prefix = f"Invalid duration ({reason}): {shown}." if reason else f"Invalid duration: {shown}."
        return ValueError(f"{prefix} Use values like 500ms, 30s, 5m, 2h, or 1h30m.")

    text = raw.strip().lower()
    if not text:
        raise invalid("empty")
    single = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
    if single:
        return round(float(single.group(1)) * DURATION_UNITS_MS[single.group(2) or "ms"])
    total = 0.0
    consumed = 0
    for m in DURATION_RE.finditer(text):
        if m.start() != consumed:
            raise invalid("each composite segment needs a unit")
        total += float(m.group(1)) * DURATION_UNITS_MS[m.group(2)]
        consumed = m.end()
    if consumed != len(text) or consumed == 0:
        raise invalid()
    return round(total)


def restart_option_error(*, safe: bool, force: bool, skip_deferral: bool, wait: str | None) -> str | None:
    """The §10.6 restart flag combinations that are refused."""
    if skip_deferral and not safe:
        return "--skip-deferral requires --safe"
    if safe and force:
        return "--safe cannot be combined with --force; omit --safe to begin a forced restart"
    if safe and wait is not None:
        return "--safe cannot be combined with --wait; safe restart uses gateway deferral"
    if force and wait is not None:
        return "--force cannot be combined with --wait"
    if wait is not None:
        try:
            parse_duration_ms(wait)
        except ValueError as exc:
            return str(exc)
    return None


def wait_for_health(ctx: Ctx, port: int) -> tuple[str, float]:
    """Poll /readyz until ready or the budget runs out: ("ready"|"starting"|"down", seconds waited)."""
    start = ctx.clock()
    while True:
        last = ctx.probe(port)
        elapsed = ctx.clock() - start
        if last == "ready" or elapsed >= ctx.health_timeout_s:
            return last, elapsed
        ctx.sleep(HEALTH_DELAY_S)


def _report_health(ctx: Ctx, rep: Reporter, port: int, out: list[str], message: str | None = None) -> int:
    outcome, elapsed = wait_for_health(ctx, port)
    if outcome == "ready":
        return rep.ok("restarted", message=message, lines=out)
    seconds = max(1, round(elapsed))
    hints = [ctx.cli("gateway status --deep"), ctx.cli("doctor")]
    if outcome == "starting":
        text = (
            f"Gateway service is still starting after {seconds}s. Last observed startup phase: unknown. "
            f"Run {ctx.cli('gateway status --deep')}."
        )
        return rep.fail(text, hints=hints, result="still-starting", lines=out)
    rep.warnings.append(f"Timed out after {seconds}s waiting for gateway port {port} to become healthy.")
    return rep.fail(
        f"Gateway restart timed out after {seconds}s waiting for health checks.",
        hints=hints,
        result="restart-health-failed",
        lines=out,
    )


def _signal_restart(ctx: Ctx, rep: Reporter) -> int:
    """Restart the running gateway in place (SIGUSR2 to the state-lock owner): external supervisors, --safe."""
    from gateway_trio.runtime import running_port

    state, pid = lock_owner(ctx.state_dir)
    if state != "held" or pid is None:
        return rep.fail(
            f"Gateway restart failed: no running gateway holds {ctx.state_dir / 'gateway.lock'}; "
            f"start one with `{ctx.cli('gateway start')}` or `{ctx.cli('gateway run')}`."
        )
    sig = getattr(signal, "SIGUSR2", None)
    if sig is None:
        return rep.fail("Gateway restart failed: in-place restarts need SIGUSR2, which this platform does not have.")
    try:
        ctx.send_signal(pid, sig)
    except OSError as exc:
        return rep.fail(f"Gateway restart failed: cannot signal pid {pid}: {exc}")
    audit(ctx.state_dir, "restart", "signal", pid=pid, interactive=ctx.interactive)
    ctx.sleep(HEALTH_DELAY_S)  # let the old generation close admission before probing
    port = running_port(ctx.state_dir) or ctx.port()
    return _report_health(ctx, rep, port, [], message=f"Gateway restarted in place (pid {pid}, SIGUSR2).")


def do_restart(
    ctx: Ctx,
    *,
    safe: bool = False,
    force: bool = False,
    skip_deferral: bool = False,
    wait: str | None = None,
    json_: bool = False,
) -> int:
    """``gateway restart``: through the service manager, then a bounded health check (exit 2: still starting)."""
    rep = Reporter("restart", json_, ctx.backend, ctx.warnings)
    error = restart_option_error(safe=safe, force=force, skip_deferral=skip_deferral, wait=wait)
    if error:
        return rep.fail(error)
    if supervisor_external(ctx.env) or safe:
        return _signal_restart(ctx, rep)
    refusal = mutation_refusal(ctx, "restart")
    if refusal:
        return rep.fail(f"Gateway restart failed: Error: {refusal}")
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    if not backend.installed():
        if lock_owner(ctx.state_dir)[0] == "held":
            return _signal_restart(ctx, rep)
        return rep.fail(f"Gateway service {backend.not_loaded_text}.", hints=start_hints(ctx))
    status = backend.status()
    out: list[str] = []
    try:
        mode = backend.restart(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway restart failed: {exc.message}", hints=exc.hints or start_hints(ctx), lines=out)
    audit(ctx.state_dir, "restart", mode, pid=status.pid, interactive=ctx.interactive)
    port = definition_port(backend.definition()) or ctx.port()
    return _report_health(ctx, rep, port, out)


def do_uninstall(ctx: Ctx, *, json_: bool = False) -> int:
    """``gateway uninstall``: disable, stop and remove the definition and the stored token."""
    rep = Reporter("uninstall", json_, ctx.backend, ctx.warnings)
    if nix_mode(ctx.env):
        return rep.fail("Nix mode detected; service uninstall is disabled.")
    refusal = mutation_refusal(ctx, "uninstall")
    if refusal:
        return rep.fail(refusal)
    backend = ctx.backend
    if backend is None:
        return rep.fail(_unsupported(ctx))
    out: list[str] = []
    try:
        mode = backend.uninstall(out)
    except ServiceError as exc:
        return rep.fail(f"Gateway uninstall failed: {exc.message}", hints=exc.hints, lines=out)
    if mode:
        audit(ctx.state_dir, "uninstall", mode, pid=None, interactive=ctx.interactive)
    return rep.ok("uninstalled", lines=out, loaded=False)


# --------------------------------------------------------------------------- the CLI

Json = Annotated[bool, Parameter(name="--json", negative="")]
Flag = Annotated[bool, Parameter(negative="")]


def install(
    *,
    port: int | None = None,
    token: str | None = None,
    force: Flag = False,
    allow_unconfigured: Flag = False,
    system: Flag = False,
    json_: Json = False,
) -> int:
    """Install the gateway as a service and start it (systemd user unit, LaunchAgent or Scheduled Task).

    A no-op when the service is already installed and loaded, unless --force. The definition is
    written atomically; secrets never go into it.

    Parameters
    ----------
    port
        Port the service runs on (default: OPENCLAW_GATEWAY_PORT, gateway.port, the profile's port, 18789).
    token
        Gateway token for the service, kept only in the owner-only (0600) env file, never in the
        unit, plist or task. Ignored when gateway.auth.token is a SecretRef.
    force
        Reinstall even if already installed (rewrites the definition; may restart a running gateway).
    allow_unconfigured
        Let the service start without gateway.mode=local.
    system
        Linux: print a systemd system unit (User= set) and the sudo steps to install it; writes nothing.
    json_
        Print the result as one JSON object.
    """
    return do_install(
        Ctx.current(),
        port=port,
        token=token,
        force=force,
        allow_unconfigured=allow_unconfigured,
        system=system,
        json_=json_,
    )


def start(*, json_: Json = False) -> int:
    """Start the installed gateway service (idempotent: reports the pid when it already runs).

    Parameters
    ----------
    json_
        Print the result as one JSON object.
    """
    return do_start(Ctx.current(), json_=json_)


def stop(*, force: Flag = False, disable: Flag = False, json_: Json = False) -> int:
    """Stop the gateway service. Stopping an absent service is a successful no-op.

    Parameters
    ----------
    force
        Required in a non-interactive shell (protects the operator's running gateway).
    disable
        launchd only: also persistently disable the job so KeepAlive/RunAtLoad do not respawn it.
    json_
        Print the result as one JSON object.
    """
    return do_stop(Ctx.current(), force=force, disable=disable, json_=json_)


def restart(
    *,
    safe: Flag = False,
    force: Flag = False,
    skip_deferral: Flag = False,
    wait: str | None = None,
    json_: Json = False,
) -> int:
    """Restart the gateway through its service manager, then check its health.

    Exit 1 when the restarted gateway does not become ready (result restart-health-failed), 2 when
    it is still starting at the end of the wait (still-starting).

    Parameters
    ----------
    safe
        Restart the running gateway in place (SIGUSR2), letting it drain its work first.
    force
        Restart now through the service manager; admitted work drains within the shutdown budget.
    skip_deferral
        Requires --safe; accepted for compatibility (this gateway does not defer in-place restarts).
    wait
        Deferral budget for active work (500ms, 30s, 5m, 1h30m; 0 = indefinitely); not with --force or
        --safe. Validated; this gateway drains within its stop budget, so the value is not used yet.
    json_
        Print the result as one JSON object.
    """
    return do_restart(Ctx.current(), safe=safe, force=force, skip_deferral=skip_deferral, wait=wait, json_=json_)


def uninstall(*, json_: Json = False) -> int:
    """Disable, stop and remove the gateway service (and the token it stored).

    Parameters
    ----------
    json_
        Print the result as one JSON object.
    """
    return do_uninstall(Ctx.current(), json_=json_)


def _with_identity_rule(doc: str | None) -> str:
    """A service command's docstring with :data:`IDENTITY_HELP` as its last paragraph before
    ``Parameters`` (so ``--help`` says when it refuses and how to override)."""
    text = doc or ""
    head, sep, tail = text.partition("\n    Parameters\n")
    return f"{head.rstrip()}\n\n    {IDENTITY_HELP}\n" + (f"{sep}{tail}" if sep else "")


for _command in (install, start, stop, restart, uninstall):
    _command.__doc__ = _with_identity_rule(_command.__doc__)


__all__ = [
    "Backend",
    "Ctx",
    "LaunchdBackend",
    "SchtasksBackend",
    "ServiceError",
    "ServiceSpec",
    "Status",
    "SystemdBackend",
    "install",
    "restart",
    "start",
    "stop",
    "uninstall",
]
