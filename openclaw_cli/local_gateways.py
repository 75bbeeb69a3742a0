"""The other gateways on this host, found without the network (issue 9 items 10 and 12).

Two sources, merged by state dir: this account's state dirs (``~/.openclaw``,
``~/.openclaw-<profile>``) whose ``gateway.lock`` is held (it records the pid and the port), and
this user's running gateway processes (``/proc``: a ``gateway [run]`` command line, or the
published gateway's ``openclaw-gateway`` title) with the same home, whose state dir follows from
their own environment and profile flags and whose ports from their listening sockets. Other users'
processes are never looked at; this user's processes under another HOME (a throwaway test HOME, a
container's) are a separate setup and are included only when asked (``gateway status --deep``).
``gateway probe`` probes each with the credentials its own state dir holds; ``doctor`` and
``gateway status --deep`` tell this gateway's processes from the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_trio.runtime import Paths, StartupError, home_dir, load_config, owner_key


@dataclass
class LocalGateway:
    """One gateway of this user on this host."""

    state_dir: Path
    profile: str | None = None
    config_path: Path | None = None
    pid: int | None = None
    ports: list[int] = field(default_factory=list)
    command: str = ""
    #: Where it was found: "lock file", "process".
    sources: list[str] = field(default_factory=list)

    @property
    def port(self) -> int | None:
        return self.ports[0] if self.ports else None

    def label(self) -> str:
        who = f"profile {self.profile}" if self.profile else "default profile"
        return f"{who}, {self.state_dir}" + (f", pid {self.pid}" if self.pid else "")

    def credentials(self) -> tuple[str | None, str | None]:
        """The token or password a local CLI would use for it: its config, else its runtime token."""
        cfg: dict[str, Any] = {}
        try:
            cfg = load_config(self.config_path or self.state_dir / "openclaw.json") or {}
        except StartupError:
            pass
        gw = cfg.get("gateway") if isinstance(cfg.get("gateway"), dict) else {}
        auth = gw.get("auth") if isinstance(gw.get("auth"), dict) else {}
        token = auth.get("token") if isinstance(auth.get("token"), str) and auth.get("token") else None
        password = auth.get("password") if isinstance(auth.get("password"), str) and auth.get("password") else None
        if not (token or password):
            try:
                token = (self.state_dir / "gateway.runtime-token").read_text().strip() or None
            except OSError:
                pass
        return token, password


def is_gateway_server(argv: list[str]) -> bool:
    """A gateway server's command line (not a CLI command such as ``gateway status``)."""
    if argv and Path(argv[0]).name.startswith("openclaw-gateway"):
        return True  # the published gateway's process title
    if "gateway" not in argv:
        return False
    rest = argv[argv.index("gateway") + 1 :]
    if not any("openclaw" in a for a in argv[: argv.index("gateway")]):
        return False
    return not rest or rest[0] == "run" or rest[0].startswith("-")


def profile_of(argv: list[str], environ: dict[str, str]) -> str | None:
    """The profile a gateway command line runs under (root ``--dev``/``--profile``, ``gateway run
    --dev``/``--profile``, else ``OPENCLAW_PROFILE``)."""
    for i, arg in enumerate(argv):
        if arg == "--dev":
            return "dev"
        if arg == "--profile" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return environ.get("OPENCLAW_PROFILE") or None


def _read_process(pid: int) -> tuple[list[str], dict[str, str]] | None:
    base = Path(f"/proc/{pid}")
    try:
        argv = [a.decode(errors="replace") for a in (base / "cmdline").read_bytes().split(b"\0") if a]
        raw = (base / "environ").read_bytes()
    except OSError:
        return None
    environ = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            environ[key] = value
    return argv, environ


def gateway_processes(*, any_home: bool = False) -> list[LocalGateway]:
    """This user's running gateway processes (Linux /proc) whose home is this process's (every
    home with ``any_home``), each with its state dir and ports."""
    from gateway_trio.runtime import ports_of

    uid = os.getuid()
    here = owner_key(home_dir())
    found: list[LocalGateway] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue  # another user's: not ours to look at
        except OSError:
            continue
        read = _read_process(int(entry.name))
        if read is None or not is_gateway_server(read[0]):
            continue
        argv, environ = read
        if not any_home and owner_key(home_dir(environ)) != here:
            continue
        try:
            paths = Paths.resolve(profile_of(argv, environ), environ=environ)
        except StartupError:
            continue
        found.append(
            LocalGateway(
                state_dir=paths.state_dir,
                profile=paths.profile,
                config_path=paths.config_path,
                pid=int(entry.name),
                ports=ports_of(int(entry.name)),
                command=" ".join(argv),
                sources=["process"],
            )
        )
    return found


def locked_state_dirs(home: Path | None = None) -> list[LocalGateway]:
    """State dirs under ``home`` (``.openclaw``, ``.openclaw-<profile>``) whose gateway lock is held."""
    from gateway_trio.runtime import lock_owner, running_port

    home = home or home_dir()
    found: list[LocalGateway] = []
    try:
        candidates = sorted(p for p in home.glob(".openclaw*") if p.is_dir())
    except OSError:
        return found
    for state in candidates:
        name = state.name
        if name != ".openclaw" and not name.startswith(".openclaw-"):
            continue
        held, pid = lock_owner(state)
        if held != "held":
            continue
        port = running_port(state)
        profile = name.removeprefix(".openclaw-") if name != ".openclaw" else None
        found.append(
            LocalGateway(
                state_dir=state,
                profile=profile,
                config_path=state / "openclaw.json",
                pid=pid,
                ports=[port] if port else [],
                sources=["lock file"],
            )
        )
    return found


def discover_local(home: Path | None = None) -> list[LocalGateway]:
    """Every gateway of this user on this host: lock files and processes, merged by state dir."""
    merged: dict[str, LocalGateway] = {}
    for gw in [*locked_state_dirs(home), *gateway_processes()]:
        key = owner_key(gw.state_dir)
        seen = merged.get(key)
        if seen is None:
            merged[key] = gw
            continue
        seen.sources = sorted({*seen.sources, *gw.sources})
        seen.pid = seen.pid or gw.pid
        seen.ports = sorted({*seen.ports, *gw.ports})
        seen.command = seen.command or gw.command
        if gw.config_path and "process" in gw.sources:
            seen.config_path = gw.config_path  # the process knows its own config path
    return list(merged.values())


__all__ = ["LocalGateway", "discover_local", "gateway_processes", "is_gateway_server", "locked_state_dirs"]
