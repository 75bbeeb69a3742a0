"""A real IRC server for the tests (Debian's ``ngircd``) and a line-protocol client playing the human.

:class:`Ngircd` writes a config for a free loopback port (optionally a server password and a TLS
port with a self-signed certificate made here), runs ``ngircd -n`` in its own process group and
kills it by pid on exit; :meth:`Ngircd.restart` brings it back on the same ports. Tests skip with a
clear message when ``ngircd`` is not installed (``apt-get install -y ngircd``; ``.ci/run`` does).

:class:`Human` is a small blocking client: it registers, joins, sends, answers the server's PINGs
and waits (bounded) for lines matching a predicate; every line it read is kept.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_proc import free_port

NGIRCD = shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None)
requires_ngircd = pytest.mark.skipif(NGIRCD is None, reason="ngircd is not installed (apt-get install -y ngircd)")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key) that a client can trust as its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "irc-cert.pem", directory / "irc-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Ngircd:
    def __init__(self, root: Path, *, password: str | None = None, tls: bool = False) -> None:
        self.root = root
        self.password = password
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.cert: Path | None = None
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        if tls:
            self.cert, self.key = self_signed(root)
        self.conf = root / "ngircd.conf"
        self.conf.write_text(self._config())

    def _config(self) -> str:
        lines = [
            "[Global]", "Name = irc.test.local", "Info = OpenClaw test server", "Listen = 127.0.0.1",
            f"Ports = {self.port}", 'MotdPhrase = "test server"', f"PidFile = {self.root / 'ngircd.pid'}",
            "ServerUID = 0", "ServerGID = 0",
        ]
        if self.password:
            lines.append(f"Password = {self.password}")
        lines += ["[Limits]", "MaxConnectionsIP = 0", "PingTimeout = 120", "PongTimeout = 20",
                  "[Options]", "PAM = no", "Ident = no", "DNS = no", "RequireAuthPing = no"]
        if self.tls_port:
            lines += ["[SSL]", f"CertFile = {self.cert}", f"KeyFile = {self.key}", f"Ports = {self.tls_port}"]
        return "\n".join(lines) + "\n"

    def start(self) -> Ngircd:
        assert NGIRCD is not None
        with open(self.root / "ngircd.log", "ab") as log:
            self.proc = subprocess.Popen([NGIRCD, "-n", "-f", str(self.conf)], stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, (self.root / "ngircd.log").read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("ngircd did not start listening within 10 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Ngircd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Human:
    """A person on IRC (a blocking client; every wait is bounded)."""

    def __init__(self, port: int, nick: str, *, password: str | None = None) -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.lines: list[str] = []
        if password:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick.title()}")
        self.expect(lambda line: " 376 " in line or " 422 " in line, 10)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        self.expect(lambda line: f" 366 {self.nick} {channel} " in line, 10)

    def say(self, target: str, text: str) -> None:
        self.send(f"PRIVMSG {target} :{text}")

    def _read(self, until: float) -> str | None:
        while b"\n" not in self.buffer:
            left = until - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\n")
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if line.startswith("PING"):
            self.send("PONG" + line[4:])
        self.lines.append(line)
        return line

    def expect(self, pred: Callable[[str], bool], timeout: float = 30.0) -> str | None:
        """The first new line matching ``pred`` within ``timeout`` s, else ``None``."""
        until = time.monotonic() + timeout
        while True:
            line = self._read(until)
            if line is None:
                return None
            if pred(line):
                return line

    def privmsgs(self, sender: str, target: str | None = None) -> list[str]:
        """Texts of the PRIVMSGs from ``sender`` (to ``target``) read so far."""
        out = []
        for line in self.lines:
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[1] == "PRIVMSG" and parts[0][1:].split("!")[0] == sender:
                if target is None or parts[2] == target:
                    out.append(parts[3][1:] if parts[3].startswith(":") else parts[3])
        return out

    def close(self) -> None:
        try:
            self.send("QUIT :bye")
        except OSError:
            pass
        self.sock.close()
