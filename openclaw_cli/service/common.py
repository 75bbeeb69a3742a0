"""What every backend shares: the command runner, the gateway command and its environment, the spec,
the status, the error, definition files, and the :class:`Backend` interface."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .names import unit_name

Runner = Callable[[Sequence[str]], tuple[int, str, str]]


TOKEN_KEY = "OPENCLAW_GATEWAY_TOKEN"


SERVICE_PATH = {"darwin": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin"}


DEFAULT_SERVICE_PATH = "/usr/local/bin:/usr/bin:/bin"


PORT_RE = re.compile(r"--port(?:\s+|</string>\s*<string>)(\d+)")


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


def command_detail(out: str, err: str) -> str:
    return " ".join((err or out).split())[:1000]


def exec_start(port: int, allow_unconfigured: bool, python: str | None = None) -> list[str]:
    """The gateway command a service runs."""
    args = [python or sys.executable, "-m", "openclaw_cli", "gateway", "run", "--port", str(port)]
    if allow_unconfigured:
        args.append("--allow-unconfigured")
    return args


def dev_root() -> Path | None:
    """The source checkout this CLI runs from (a dev install), else None: the unit's WorkingDirectory."""
    root = Path(__file__).resolve().parents[2]
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


def write_definition(path: Path, text: str, mode: int) -> None:
    from gateway_trio.runtime import atomic_write

    atomic_write(path, text.encode(), mode=mode)


def read_definition(path: Path) -> str | None:
    """The file's text exactly (no newline translation: task scripts are CRLF), None when unreadable."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def definition_port(text: str | None) -> int | None:
    m = PORT_RE.search(text or "")
    return int(m.group(1)) if m else None


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
        return read_definition(self.definition_path)

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
