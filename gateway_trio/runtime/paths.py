"""Where things live: the home, the profile, the state dir and config path, the default ports.

runtime-cli.md §1: ``OPENCLAW_HOME`` > ``$HOME``; ``--profile``/``OPENCLAW_PROFILE`` name the state
dir (``~/.openclaw-<name>``) unless ``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH`` say otherwise.
The CLI and the gateway resolve paths here, so both always agree on which gateway is meant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 18789
DEV_PORT = 19001
EXIT_CONFIG = 78
#: A usage error (a flag's value), as for an unknown flag (cyclopts exits 2 too).
EXIT_USAGE = 2
PROFILE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$", re.IGNORECASE)


class StartupError(Exception):
    """A refusal to start: ``message`` goes to stderr, ``exit_code`` is the process status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    @property
    def summary(self) -> str:
        """One line for one-line reports (a log record, a doctor check): the first line, joined
        with the next when the first only introduces it (``… Invalid config at <path>:``)."""
        lines = self.message.splitlines() or [""]
        return f"{lines[0]} {lines[1].strip()}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() in ("", "undefined", "null"):
        return None
    return value


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``OPENCLAW_HOME`` > ``$HOME`` > the OS home (of this process, or of ``environ``)."""
    raw = env_value("OPENCLAW_HOME", environ) or env_value("HOME", environ)
    return Path(raw).expanduser() if raw else Path.home()


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit (named-profile default ports, §1.2)."""
    h = 2166136261
    for b in text.encode():
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


@dataclass
class Paths:
    """Resolved locations for one profile."""

    profile: str | None
    state_dir: Path
    config_path: Path

    @classmethod
    def resolve(cls, profile: str | None = None, *, environ: Mapping[str, str] | None = None) -> Paths:
        """The paths for ``profile`` in this process's environment (or in ``environ``: another
        process's, as read from ``/proc/<pid>/environ``)."""
        profile = profile or env_value("OPENCLAW_PROFILE", environ)
        if profile is not None and not PROFILE_RE.match(profile):
            raise StartupError('Invalid --profile (use letters, numbers, "_", "-" only)', 2)
        named = profile if profile and profile.lower() != "default" else None
        state_env = env_value("OPENCLAW_STATE_DIR", environ)
        if state_env:
            state = Path(state_env).expanduser()
        else:
            state = home_dir(environ) / (f".openclaw-{named}" if named else ".openclaw")
        cfg_env = env_value("OPENCLAW_CONFIG_PATH", environ)
        config = Path(cfg_env).expanduser() if cfg_env else state / "openclaw.json"
        return cls(named, state, config)

    def cli(self, command: str) -> str:
        """``openclaw <command>`` as the operator types it to act on these paths: the profile flag
        (``--dev`` for dev), and ``OPENCLAW_STATE_DIR``/``OPENCLAW_CONFIG_PATH`` in front when they
        are not what the profile implies (the runbook's two-gateway example)."""
        home = home_dir()
        state = home / (f".openclaw-{self.profile}" if self.profile else ".openclaw")
        env = []
        if self.state_dir != state:
            env.append(f"OPENCLAW_STATE_DIR={tilde(self.state_dir)}")
        if self.config_path != self.state_dir / "openclaw.json":
            env.append(f"OPENCLAW_CONFIG_PATH={tilde(self.config_path)}")
        return " ".join([*env, cli_command(command, self.profile)])


def cli_command(command: str, profile: str | None) -> str:
    """``openclaw <command>`` for ``profile``: ``--dev`` for dev, ``--profile NAME`` otherwise."""
    if not profile or profile.lower() == "default":
        return f"openclaw {command}"
    return f"openclaw --dev {command}" if profile == "dev" else f"openclaw --profile {profile} {command}"


def tilde(path: Path) -> str:
    """``path`` with the home directory written ``~`` (as the runbook's messages show paths)."""
    home = str(home_dir())
    text = str(path)
    return "~" + text[len(home) :] if home != "/" and (text == home or text.startswith(home + "/")) else text


def session_store_path(state_dir: Path) -> Path:
    """The agent session store (SQLite) of a state dir."""
    return state_dir / "agents" / "sessions.sqlite"


def channel_queue_path(state_dir: Path) -> Path:
    """The channels' durable queues (SQLite): inbound messages and the outbox."""
    return state_dir / "channels" / "queues.sqlite"


def channel_pairing_path(state_dir: Path) -> Path:
    """The channels' pairing state (SQLite)."""
    return state_dir / "state" / "openclaw.sqlite"
