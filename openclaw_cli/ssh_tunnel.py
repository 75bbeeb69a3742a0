"""An ``ssh -N -L`` tunnel to a remote gateway's loopback port, for ``gateway probe --ssh``.

The command line is the published one (runtime-cli.md §10.3): host keys are checked strictly and
ssh never prompts (``BatchMode``), so a probe cannot hang on a password or a new host key. Only an
ssh client from the OS system directories is used, never one found on ``PATH``. The tunnel is ready
when its local port accepts TCP; it is closed (SIGTERM, then SIGKILL, by pid) on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
POLL_S = 0.05
_TARGET = re.compile(r"^(?P<user>[^@\s]+@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?$")


class TunnelError(Exception):
    """The tunnel could not be opened; the message is shown after ``SSH tunnel failed: ``."""


@dataclass(frozen=True)
class SshTarget:
    destination: str  # user@host (or host), as ssh takes it after ``--``
    port: int  # the SSH port

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        """``user@host``, ``user@host:port`` or ``user@[v6]:port``."""
        m = _TARGET.match(text.strip())
        if not m:
            raise TunnelError(f"invalid SSH target {text!r} (expected user@host or user@host:port)")
        port = int(m["port"]) if m["port"] else 22
        if not 0 < port <= 65535:
            raise TunnelError(f"invalid SSH port in {text!r}")
        host = m["host"].strip("[]")
        return cls(f"{m['user'] or ''}{host}", port)


def find_ssh(dirs: Sequence[str] = SYSTEM_DIRS) -> str | None:
    """The first executable ``ssh`` in the system directories."""
    for d in dirs:
        path = Path(d) / "ssh"
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_local_port(preferred: int) -> int:
    """The remote port itself when it is free on 127.0.0.1, else one the kernel hands out."""
    if _port_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_argv(
    ssh: str,
    target: SshTarget,
    local_port: int,
    remote_port: int,
    identity: str | None,
    extra_options: Sequence[str] = (),
) -> list[str]:
    """The published command line (``extra_options`` is for tests: a throwaway known_hosts)."""
    argv = [
        ssh,
        "-N",
        "-L",
        f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
        "-p",
        str(target.port),
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UpdateHostKeys=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
        *extra_options,
    ]
    if identity:
        argv += ["-i", identity]
    return [*argv, "--", target.destination]


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(POLL_S)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=2)


@contextlib.contextmanager
def open_tunnel(
    target: SshTarget,
    remote_port: int,
    *,
    identity: str | None = None,
    timeout_ms: int = 1500,
    ssh: str | None = None,
    extra_options: Sequence[str] = (),
) -> Iterator[int]:
    """Open the tunnel; yields the local port. Raises :class:`TunnelError` when it is not ready in time."""
    exe = ssh or find_ssh()
    if exe is None:
        raise TunnelError(f"no ssh client in {', '.join(SYSTEM_DIRS)}")
    if identity and not Path(identity).expanduser().is_file():
        raise TunnelError(f"SSH identity file not found: {identity}")
    local = pick_local_port(remote_port)
    argv = ssh_argv(
        exe, target, local, remote_port, str(Path(identity).expanduser()) if identity else None, extra_options
    )
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + max(timeout_ms, 1) / 1000
        while True:
            code = proc.poll()
            if code is not None:
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
                raise TunnelError(f"ssh exited ({code})" + (f"\n{err}" if err else ""))
            if _accepts(local):
                break
            if time.monotonic() >= deadline:
                raise TunnelError(f"ssh tunnel not ready within {timeout_ms}ms (127.0.0.1:{local})")
            time.sleep(POLL_S)
        yield local
    finally:
        _stop(proc)
        if proc.stderr:
            proc.stderr.close()


__all__ = ["SshTarget", "TunnelError", "find_ssh", "open_tunnel", "pick_local_port", "ssh_argv"]
