"""Profiles: two gateways with their own config, state dir and port run side by side on one host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway_proc import REPO, _kill_group, child_env, free_port, http_request


def test_two_profiles_side_by_side(tmp_path: Path) -> None:
    home = tmp_path / "home"
    procs = []
    ports = {}
    try:
        for name in ("alpha", "beta"):
            port = ports[name] = free_port()
            state = home / f".openclaw-{name}"
            state.mkdir(parents=True)
            cfg = {
                "gateway": {"mode": "local", "port": port, "auth": {"mode": "token", "token": f"{name}-token"}},
                "logging": {"file": str(tmp_path / f"{name}.log")},
            }
            (state / "openclaw.json").write_text(json.dumps(cfg))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "openclaw_cli", "--profile", name, "gateway", "run"],
                    cwd=REPO,
                    env=child_env(home),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        import time

        deadline = time.monotonic() + 15
        pending = dict(ports)
        while pending and time.monotonic() < deadline:
            for name, port in list(pending.items()):
                try:
                    if http_request("127.0.0.1", port, "/healthz", timeout=1)[0] == 200:
                        del pending[name]
                except OSError:
                    pass
            time.sleep(0.1)
        assert not pending, f"not ready: {pending}"
        for name in ("alpha", "beta"):
            assert (home / f".openclaw-{name}" / "gateway.lock").exists()
            assert "ready" in (tmp_path / f"{name}.log").read_text()
            out = subprocess.run(
                [sys.executable, "-m", "openclaw_cli", "--profile", name, "config", "get", "gateway.port"],
                cwd=REPO,
                env=child_env(home),
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            assert out.stdout.strip() == str(ports[name])
    finally:
        for proc in procs:
            _kill_group(proc)
