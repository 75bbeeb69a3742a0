"""Who listens on a port, from Linux ``/proc`` (``gateway status``, ``doctor``, ``logs``), and
``gateway run --force``'s freeing of the gateway port first (runtime-cli.md §6.4)."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from .paths import StartupError


def _decode_address(hex_addr: str) -> str:
    """``0100007F`` → ``127.0.0.1``; the 32-digit IPv6 form → its compressed text (/proc byte order)."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def listening_table() -> list[tuple[str, int, str]]:
    """``(address, port, inode)`` of every listening TCP socket on this host, from /proc/net/tcp{,6}."""
    found: list[tuple[str, int, str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A":
                host, _, hex_port = parts[1].rpartition(":")
                found.append((_decode_address(host), int(hex_port, 16), parts[9]))
    return found


def _listening_sockets(port: int) -> list[tuple[str, str]]:
    """``(host:port, inode)`` of every listening TCP socket on ``port``."""
    return [
        (f"[{addr}]:{p}" if ":" in addr else f"{addr}:{p}", inode) for addr, p, inode in listening_table() if p == port
    ]


def ports_of(pid: int) -> list[int]:
    """The TCP ports process ``pid`` listens on (Linux /proc; empty when it cannot be read)."""
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return sorted({p for _, p, inode in listening_table() if inode in inodes})


def listening_addresses(port: int) -> list[str]:
    """``host:port`` of every listening socket on ``port`` (``[v6]:port`` for IPv6), Linux /proc."""
    return sorted({addr for addr, _ in _listening_sockets(port)}, key=lambda a: (a.startswith("["), a))


def listeners(port: int) -> dict[int, str]:
    """pid → command line of the processes listening on ``port`` (Linux /proc)."""
    inodes = {inode for _, inode in _listening_sockets(port)}
    found: dict[int, str] = {}
    if not inodes:
        return found
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    found[int(pid_dir.name)] = cmd
                    break
        except OSError:
            continue
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(port: int, *, sigterm_timeout: float = 0.7, wait_timeout: float = 3.0) -> list[int]:
    """SIGTERM (then SIGKILL) every listener on ``port`` and wait until it can be bound.

    Runs before the event loop starts, so its waits block (through the runtime's clock).
    """
    from .. import _runtime  # here, not at the top: the CLI imports this module's readers without Trio

    pids = {pid: cmd for pid, cmd in listeners(port).items() if pid != os.getpid()}
    if not pids:
        return []
    gateway_like = [pid for pid, cmd in pids.items() if "openclaw" in cmd and "gateway" in cmd]
    if gateway_like and not sys.stdin.isatty() and os.environ.get("OPENCLAW_FORCE_NONINTERACTIVE") != "1":
        raise StartupError(
            "Refusing to kill the operator's running gateway service from a non-interactive shell. Use an isolated "
            "dev gateway (openclaw gateway run --dev, or --profile <name> with a free port) for testing. "
            f"Existing gateway listener pid: {gateway_like[0]}.",
            1,
        )
    for pid, cmd in pids.items():
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"force: killed pid {pid} ({cmd[:80]}) on port {port}", file=sys.stderr)
        except ProcessLookupError:
            pass
    deadline = _runtime.monotonic() + sigterm_timeout
    while _runtime.monotonic() < deadline and any(_alive(p) for p in pids):
        _runtime.sleep_blocking(0.05)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            print(f"force: escalated to SIGKILL while freeing port {port}", file=sys.stderr)
    start = _runtime.monotonic()
    while not _bindable(port):
        if _runtime.monotonic() - start > wait_timeout:
            raise StartupError(
                f"Could not free port {port}: still in use. Run openclaw gateway status --deep to inspect the listener.",
                1,
            )
        _runtime.sleep_blocking(0.15)
    waited = int((_runtime.monotonic() - start) * 1000)
    if waited:
        print(f"force: waited {waited}ms for port {port} to become bindable", file=sys.stderr)
    return list(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
