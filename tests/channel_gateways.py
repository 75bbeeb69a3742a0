"""A gateway with its Telegram channel pointed at tests/botapi.py: ours or the published one.

``telegram_gateway(kind, tmp)`` starts the scripted model upstream (so both gateways answer the
same ``upstream-reply-<n>: <text>``), a Bot-API-shaped server, and a gateway whose config is
http-openai-observed.md §0.1 plus ``channels.telegram`` (``apiRoot`` = the test server), and yields
a :class:`Rig`. ``kind`` is ``"ours"`` or ``"reference"`` (the published gateway; needs
``OPENCLAW_REFERENCE_BIN``). :meth:`Rig.cli` runs *our* CLI against it, :meth:`Rig.published_cli`
the published one; both read the same HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_gateways import REFERENCE, observed_config, reference_gateway
from botapi import BotApi
from gateway_proc import REPO, GatewayProcess, child_env, free_port, make_home
from upstream import ScriptedUpstream

KEY = "sk-upstream-test-key"


@dataclass
class Rig:
    kind: str
    port: int
    api: BotApi
    upstream: ScriptedUpstream
    home: Path
    gateway: Any

    def _env(self) -> dict[str, str]:
        env = child_env(self.home)
        env.pop("TELEGRAM_BOT_TOKEN", None)
        return env

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Our ``openclaw ARGS`` with this rig's HOME (it finds the gateway through the config)."""
        return subprocess.run([sys.executable, "-m", "openclaw_cli", *args], cwd=REPO, env=self._env(),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def published_cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        assert REFERENCE, "OPENCLAW_REFERENCE_BIN is not set"
        env = {**os.environ, "HOME": str(self.home)}
        env = {k: v for k, v in env.items() if not k.startswith("OPENCLAW_") or k == "OPENCLAW_REFERENCE_BIN"}
        return subprocess.run([REFERENCE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    @property
    def config_path(self) -> Path:
        return self.home / ".openclaw" / "openclaw.json"

    def config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def output(self) -> str:
        if self.kind == "ours":
            return self.gateway.output()
        log = self.home.parent / "reference.log"
        return log.read_text(errors="replace")[-6000:] if log.exists() else ""


def telegram_config(port: int, upstream: str, api_root: str, token: str, **telegram: Any) -> dict[str, Any]:
    cfg = observed_config(port, upstream)
    cfg["channels"] = {"telegram": {"enabled": True, "botToken": token, "apiRoot": api_root, "dmPolicy": "pairing", **telegram}}
    return cfg


@contextmanager
def telegram_gateway(kind: str, tmp: Path, **telegram: Any) -> Iterator[Rig]:
    with ScriptedUpstream(api_key=KEY) as up, BotApi() as api:
        port = free_port()
        cfg = telegram_config(port, up.base_url, api.api_root, api.token, **telegram)
        if kind == "ours":
            home = make_home(tmp, cfg)
            with GatewayProcess(tmp, home, env={"TELEGRAM_BOT_TOKEN": ""}) as gw:
                gw.wait_ready(port, timeout=30)
                yield Rig(kind, port, api, up, home, gw)
            return
        with reference_gateway(tmp, cfg, port) as (home, proc):
            yield Rig(kind, port, api, up, home, proc)
