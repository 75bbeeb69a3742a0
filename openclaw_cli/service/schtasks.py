"""Windows: the Scheduled Task running ``<state>/gateway.cmd``, or a Startup-folder launcher when task
creation is denied."""

from __future__ import annotations

import re
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
        return parse_task_env_script(read_definition(self.env_script) or "").get(TOKEN_KEY)

    def _lock_pid(self) -> int | None:
        first = (read_definition(self.state_dir / "gateway.lock") or "").split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    def _launch(self) -> None:
        rc, o, e = self.runner(["cmd.exe", "/d", "/c", str(self.startup_entry)])
        if rc != 0:
            raise ServiceError(f"could not launch {self.startup_entry}: {command_detail(o, e)}")

    def _kill_fallback(self, out: list[str], verb: str) -> bool:
        pid = self._lock_pid()
        if pid is None:
            return False
        rc, o, e = self.runner(["taskkill", "/PID", str(pid), "/T", "/F"])
        if rc != 0:
            raise ServiceError(f"taskkill failed: {command_detail(o, e)}")
        out.append(f"{verb} Windows login item: {self.name}")
        return True

    def _write_files(self, spec: ServiceSpec) -> None:
        values = parse_task_env_script(read_definition(self.env_script) or "")
        if spec.token is not None:
            values[TOKEN_KEY] = spec.token
        elif spec.clear_token:
            values.pop(TOKEN_KEY, None)
        write_definition(self.env_script, render_task_env_script(values), 0o600)
        write_definition(self.script_path, self.render(spec), 0o700)

    def status(self) -> Status:
        rc, o, e = self._st("/Query", "/TN", self.name, "/FO", "LIST", "/V")
        if rc == 0:
            m = re.search(r"^Status:\s*(.+)$", o, re.MULTILINE)
            value = m.group(1).strip().lower() if m else ""
            return Status(True, "running" if value == "running" else "stopped" if value else "unknown")
        if self.startup_entry.exists():
            pid = self._lock_pid()
            return Status(True, "unknown" if pid is None else "running", pid, "Startup-folder login item installed")
        return Status(False, "unknown", None, command_detail(o, e))

    def install(self, spec: ServiceSpec, out: list[str]) -> str:
        self._write_files(spec)
        rc, o, e = self.runner(render_windows_task(name=self.name, script=self.script_path))
        if rc != 0:
            detail = command_detail(o, e)
            if not _startup_fallback(rc, detail):
                raise ServiceError(f"schtasks create failed: {detail}")
            self.startup_entry.parent.mkdir(parents=True, exist_ok=True)
            write_definition(self.startup_entry, render_startup_launcher(script=self.script_path, profile=self.profile), 0o600)
            self._launch()
            out += [f"Installed Windows login item: {self.startup_entry}", f"Task script: {self.script_path}"]
            return "startup-entry-install"
        self.startup_entry.unlink(missing_ok=True)
        rc, o, e = self._st("/Run", "/TN", self.name)
        if rc != 0:
            raise ServiceError(f"schtasks run failed: {command_detail(o, e)}", result="installed-not-started")
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
                raise ServiceError(f"schtasks run failed: {command_detail(o, e)}")
            out.append(f"Started Scheduled Task: {self.name}")
            return "schtasks-start"
        self._launch()
        out.append(f"Started Windows login item: {self.name}")
        return "startup-entry-start"

    def stop(self, out: list[str], *, disable: bool = False) -> str:
        if self._registered():
            rc, o, e = self._st("/End", "/TN", self.name)
            if rc != 0:
                raise ServiceError(f"schtasks end failed: {command_detail(o, e)}")
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
                raise ServiceError(f"schtasks run failed: {command_detail(o, e)}")
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
                raise ServiceError(f"schtasks delete failed: {command_detail(o, e)}")
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
