"""Linux: the systemd user unit (§11.1), its rendering and env file, and the system-unit ownership rule (§11.2)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import (
    TOKEN_KEY,
    Backend,
    Runner,
    ServiceError,
    ServiceSpec,
    Status,
    command_detail,
    read_definition,
    run_command,
    write_definition,
)
from .names import description

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


ESCAPE_CHARS = (" ", "\t", '"', "\\")


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
        return read_definition(self.system_unit_path if scope == "system" else self.unit_path)

    def _failure(self, verb: str, rc: int, detail: str) -> ServiceError:
        if rc == 127 or any(p in detail.lower() for p in SYSTEMD_UNAVAILABLE_PATTERNS):
            return ServiceError(f"systemctl --user unavailable: {detail}", systemd_unavailable_hints(self.name))
        return ServiceError(f"systemctl {verb} failed: {detail}".strip())

    def _run_steps(self, steps: Sequence[tuple[str, ...]], scope: str = "user") -> None:
        """Run ``steps``; a "unit not found" is retried once after another daemon-reload (§11.1)."""
        retried = False
        for step in steps:
            rc, o, e = self._ctl(*step, scope=scope)
            detail = command_detail(o, e)
            if rc != 0 and not retried and step[0] != "daemon-reload" and _unit_not_found(detail):
                retried = True
                self._ctl("daemon-reload", scope=scope)
                rc, o, e = self._ctl(*step, scope=scope)
                detail = command_detail(o, e)
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
        current = parse_env_file(read_definition(self.env_file) or "")
        if spec.token is not None:
            current[TOKEN_KEY] = spec.token
        elif spec.clear_token:
            current.pop(TOKEN_KEY, None)
        write_definition(self.env_file, render_env_file(current), 0o600)

    def _write_unit(self, spec: ServiceSpec) -> None:
        text = self.render(spec)
        old = read_definition(self.unit_path)
        if old is not None and old != text:
            write_definition(self.unit_path.with_name(self.unit_path.name + ".bak"), old, 0o644)
        write_definition(self.unit_path, text, 0o644)
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
        return parse_env_file(read_definition(self.env_file) or "").get(TOKEN_KEY)

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
            return Status(loaded, "unknown", None, command_detail(o, e))
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
            values = parse_env_file(read_definition(self.env_file) or "")
            values.pop(TOKEN_KEY, None)
            write_definition(self.env_file, render_env_file(values), 0o600)
        self._ctl("daemon-reload")
        out.append(f"Removed systemd service: {self.unit_path}")
        return "systemd-uninstall"

    def start_hint(self) -> str:
        return f"systemctl --user start {self.name}"


def _unit_not_found(detail: str) -> bool:
    low = detail.lower()
    return "not found" in low or "does not exist" in low
