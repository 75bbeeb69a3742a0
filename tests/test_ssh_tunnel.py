"""``gateway probe --ssh``: the tunnel's command line, its failure path with the real ssh client, and
(when an OpenSSH server is installed) a real tunnel to a real gateway through a throwaway sshd on
127.0.0.1. Everything is loopback; every process is stopped by pid."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from openclaw_cli import ssh_tunnel
from openclaw_cli.ssh_tunnel import SshTarget, TunnelError, open_tunnel, ssh_argv
from tests.gateway_proc import TOKEN, GatewayProcess, free_port, local_config, make_home, openclaw

SSHD = "/usr/sbin/sshd"


def test_target_parsing() -> None:
    assert SshTarget.parse("me@host") == SshTarget("me@host", 22)
    assert SshTarget.parse("me@host:2222") == SshTarget("me@host", 2222)
    assert SshTarget.parse("host") == SshTarget("host", 22)
    assert SshTarget.parse("me@[::1]:2200") == SshTarget("me@::1", 2200)
    for bad in ("me@host:99999", "me@ho st", "", "me@host:port"):
        with pytest.raises(TunnelError):
            SshTarget.parse(bad)


def test_command_line_is_the_published_one() -> None:
    argv = ssh_argv("/usr/bin/ssh", SshTarget("me@gw", 2222), 18790, 18789, "/k/id")
    assert argv == [
        "/usr/bin/ssh", "-N", "-L", "127.0.0.1:18790:127.0.0.1:18789", "-p", "2222",
        "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=yes", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=3", "-i", "/k/id", "--", "me@gw",
    ]  # fmt: skip


def test_only_system_directories(tmp_path: Path) -> None:
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert ssh_tunnel.find_ssh([str(tmp_path)]) == str(fake)
    assert ssh_tunnel.find_ssh([str(tmp_path / "nowhere")]) is None
    assert all(d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin") for d in ssh_tunnel.SYSTEM_DIRS)


def test_a_tunnel_that_never_listens_times_out_and_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    fake = tmp_path / "ssh"
    fake.write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 30\n")
    fake.chmod(0o755)
    with pytest.raises(TunnelError, match="not ready within 300ms"), open_tunnel(
        SshTarget("me@h", 22), free_port(), timeout_ms=300, ssh=str(fake)
    ):
        pass
    pid = int(marker.read_text())
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the ssh process outlived the failed tunnel")


@pytest.mark.skipif(ssh_tunnel.find_ssh() is None, reason="no ssh client in the system directories")
def test_probe_reports_a_failed_tunnel_and_falls_back(tmp_path: Path) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    closed = free_port()
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        out = openclaw(home, "gateway", "probe", "--ssh", f"nobody@127.0.0.1:{closed}", "--json", timeout=30)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True
    failed = [w for w in doc["warnings"] if w["code"] == "ssh_tunnel_failed"]
    assert failed and failed[0]["message"].startswith("SSH tunnel failed: ssh exited (255)")
    assert "Connection refused" in failed[0]["message"]
    assert [t["id"] for t in doc["targets"]] == ["localLoopback"]


# --------------------------------------------------------------------------- a real sshd


def _sshd_usable() -> str | None:
    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen") and ssh_tunnel.find_ssh()):
        return "OpenSSH server not installed (apt-get install openssh-server)"
    if os.geteuid() != 0 and not os.path.isdir("/run/sshd"):
        return "sshd needs /run/sshd (privilege separation directory)"
    return None


@pytest.fixture
def sshd(tmp_path: Path):
    why = _sshd_usable()
    if why:
        pytest.skip(why)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=20)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'host.pub').read_text()}")
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nPidFile none\nLogLevel ERROR\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, start_new_session=True)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.skip(f"sshd did not start: {proc.stderr.read().decode()[-300:] if proc.stderr else ''}")
            time.sleep(0.05)
        yield {"port": port, "identity": str(d / "client"), "known_hosts": str(d / "known_hosts")}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def test_probe_through_a_real_ssh_tunnel(tmp_path: Path, sshd: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe opens the tunnel, reaches the gateway through it, and closes it afterwards."""
    import getpass

    from openclaw_cli.rpc_cmds import gateway_probe

    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    # ssh reads known_hosts from the account's real home; point it at the throwaway one instead.
    options = ("-o", f"UserKnownHostsFile={sshd['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null")
    monkeypatch.setattr(ssh_tunnel, "open_tunnel", functools.partial(open_tunnel, extra_options=options))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENCLAW_DISABLE_BONJOUR", "1")
    for key in [k for k in os.environ if k.startswith("OPENCLAW_") and k != "OPENCLAW_DISABLE_BONJOUR"]:
        monkeypatch.delenv(key)
    with GatewayProcess(tmp_path, home) as gw:
        gw.wait_ready(port)
        target = f"{getpass.getuser()}@127.0.0.1:{sshd['port']}"
        from contextlib import redirect_stdout
        from io import StringIO

        buf = StringIO()
        with redirect_stdout(buf):
            code = gateway_probe(
                ssh=target, ssh_identity=sshd["identity"], port=port, token=TOKEN, timeout=5000, json_=True
            )
        doc = json.loads(buf.getvalue())
        assert code == 0, doc
        tunnel = next(t for t in doc["targets"] if t["id"] == "sshTunnel")
        assert tunnel["connect"]["ok"] and tunnel["connect"]["rpcOk"], tunnel
        assert tunnel["tunnel"]["remotePort"] == port and tunnel["tunnel"]["localPort"] != port
        assert doc["primaryTargetId"] == "sshTunnel"
        # Same gateway through the tunnel and on loopback: not "multiple gateways".
        assert not [w for w in doc["warnings"] if w["code"] == "multiple_gateways"], doc["warnings"]
        local = tunnel["tunnel"]["localPort"]
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", local)) != 0, "the tunnel outlived the probe"
