"""A gateway with a working model provider: ours or the published one, on the §0.1 config.

``agent_gateway(kind, tmp)`` starts tests/upstream.py's scripted upstream and a gateway whose
config is http-openai-observed.md §0.1 (free ports instead of the recorded ones) pointing at it,
and yields ``(port, upstream)``. ``kind`` is ``"ours"`` or ``"reference"`` (the published gateway,
needs ``OPENCLAW_REFERENCE_BIN``): a behaviour test parametrized over both is right only if both pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_proc import GatewayProcess, free_port, make_home, stop_process
from upstream import ScriptedUpstream

REFERENCE = os.environ.get("OPENCLAW_REFERENCE_BIN")
#: For modules whose every test needs the published gateway (``pytestmark = NEEDS_REFERENCE``).
NEEDS_REFERENCE = pytest.mark.skipif(
    not REFERENCE,
    reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
    "../shared/tools/install-reference.sh and export the launcher path it prints",
)
TOKEN = "agents-e2e-token-0123456789"
KEY = "sk-upstream-test-key"
KINDS = [
    "ours",
    pytest.param(
        "reference",
        marks=pytest.mark.skipif(
            not REFERENCE,
            reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
            "../shared/tools/install-reference.sh and export the launcher path it prints",
        ),
    ),
]


def observed_config(port: int, upstream: str, **extra: Any) -> dict[str, Any]:
    """http-openai-observed.md §0.1, as recorded, with this test's ports."""
    model = {"reasoning": False, "input": ["text"], "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
             "contextWindow": 128000, "maxTokens": 4096}
    cfg: dict[str, Any] = {
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN},
                    "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"mode": "merge", "providers": {"upstream": {
            "baseUrl": upstream, "apiKey": KEY, "api": "openai-completions", "timeoutSeconds": 20,
            "models": [{"id": "scripted", "name": "Scripted", **model, "compat": {"supportsUsageInStreaming": True}},
                       {"id": "scripted-b", "name": "Scripted B", **model}]}}},
        "agents": {"defaults": {"model": {"primary": "upstream/scripted"}, "heartbeat": {"every": "0m"}}},
        "memory": {"search": {"provider": "upstream", "model": "embed-model"}},
    }
    cfg.update(extra)
    return cfg


def _wait_ready(port: int, alive: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), "gateway exited before it was ready"
        assert time.monotonic() < deadline, f"gateway not ready within {timeout} s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


@contextmanager
def agent_gateway(kind: str, tmp: Path, **extra: Any) -> Iterator[tuple[int, ScriptedUpstream]]:
    with ScriptedUpstream(api_key=KEY, delta_delay_s=0.01) as up:
        port = free_port()
        cfg = observed_config(port, up.base_url, **extra)
        if kind == "ours":
            home = make_home(tmp, cfg)
            with GatewayProcess(tmp, home) as gw:
                gw.wait_ready(port, timeout=20)
                yield port, up
            return
        with reference_gateway(tmp, cfg, port):
            yield port, up


@contextmanager
def reference_gateway(tmp: Path, cfg: dict[str, Any], port: int) -> Iterator[tuple[Path, subprocess.Popen]]:
    """The published gateway on ``port`` with ``cfg`` in a HOME under ``tmp`` (log: ``tmp/reference.log``);
    yields ``(home, process)`` once ``/readyz`` answers; stopped on exit."""
    home = tmp / "home"
    (home / ".openclaw").mkdir(parents=True, exist_ok=True)
    (home / ".openclaw" / "openclaw.json").write_text(json.dumps(cfg))
    with open(tmp / "reference.log", "wb") as log:
        proc = subprocess.Popen(
            [REFERENCE or "", "gateway", "run", "--port", str(port)],
            env={**os.environ, "HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            _wait_ready(port, lambda: proc.poll() is None, 120)
            yield home, proc
        finally:
            stop_process(proc)
