"""``openclaw doctor`` finds a stale lock, a port held by another process and a drifted unit; --fix repairs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gateway_proc import _kill_group, free_port, openclaw


def test_doctor_finds_and_fixes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    assert openclaw(home, "setup", "--baseline").returncode == 0
    assert openclaw(home, "config", "set", "gateway.port", str(port)).returncode == 0
    openclaw(home, "gateway", "install", "--port", str(port + 1))  # a unit whose port differs from the config
    (home / ".openclaw" / "gateway.lock").write_text("99999\n")  # nobody holds it: stale
    squatter = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        found = openclaw(home, "doctor", "--json")
        assert found.returncode == 1
        checks = {c["check"]: c for c in json.loads(found.stdout)["checks"]}
        assert not checks["lock"]["ok"] and "stale" in checks["lock"]["message"]
        assert not checks["port"]["ok"] and f"pid {squatter.pid}" in checks["port"]["message"]
        assert not checks["service"]["ok"] and f"port {port + 1} (config says {port})" in checks["service"]["message"]
        fixed = openclaw(home, "doctor", "--fix", "--json")
        checks = {c["check"]: c for c in json.loads(fixed.stdout)["checks"]}
        assert checks["service"].get("fixed") and checks["lock"].get("fixed")
        unit = (home / ".config" / "systemd" / "user" / "openclaw-gateway.service").read_text()
        assert f"--port {port}\n" in unit and f"OPENCLAW_GATEWAY_PORT={port}\n" in unit
        assert not (home / ".openclaw" / "gateway.lock").exists()
        assert fixed.returncode == 1  # the foreign port holder is reported, never killed by doctor
    finally:
        _kill_group(squatter)
