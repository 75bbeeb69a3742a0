"""``openclaw channels list [--all] [--json]``: the local channel inventory, as the published CLI
prints it (the configured accounts; ``--all`` every channel this gateway can run), with a reachable
gateway's live account snapshot in the human form only."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botapi import BotApi
from gateway_proc import GatewayProcess, free_port, local_config, make_home, openclaw

FOOTER = [
    "",
    "Model provider usage moved out of `channels list` \u2014 see `openclaw status` or `openclaw models list`.",
    "Docs: https://docs.openclaw.ai/gateway/configuration",
]
CHANNELS = {
    "telegram": {"accounts": {"Main": {"botToken": "123:abc", "name": "Main bot"}, "work": {"enabled": False}}},
    "irc": {"host": "irc.example.net", "nick": "ocbot", "enabled": False},
    "discord": {"token": "x"},
}
NO_ENV_TOKEN = {"TELEGRAM_BOT_TOKEN": ""}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return openclaw(home, "channels", "list", *args, env=NO_ENV_TOKEN)


def test_no_channels(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    out = cli(home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "Chat channels:",
        "- no configured chat channels (run `openclaw channels list --all` to see installable channels)",
        *FOOTER,
    ]
    js = cli(home, "--json")
    assert js.returncode == 0 and json.loads(js.stdout) == {"chat": {}}


def test_configured_accounts_from_the_config(tmp_path: Path) -> None:
    home = make_home(tmp_path, {"channels": CHANNELS}, log_file=False)
    out = cli(home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "Chat channels:",
        "- Telegram main (Main bot): installed, configured, enabled, token=***",
        "- Telegram work: installed, not configured, disabled, token=***",
        "- IRC default: installed, configured, disabled, base=irc.example.net:6697",
        "- discord: not installed, configured, disabled",
        *FOOTER,
    ]
    doc = json.loads(cli(home, "--json").stdout)
    assert doc == {"chat": {
        "telegram": {"accounts": ["main", "work"], "label": "Telegram", "docsPath": "/channels/telegram",
                     "installed": True, "origin": "configured"},
        "irc": {"accounts": ["default"], "label": "IRC", "docsPath": "/channels/irc", "installed": True,
                "origin": "configured"},
        "discord": {"accounts": [], "label": "discord", "installed": False, "origin": "configured"},
    }}


def test_all_adds_every_supported_channel(tmp_path: Path) -> None:
    home = make_home(tmp_path, {"channels": {"telegram": {"botToken": "123:abc"}}}, log_file=False)
    plain = cli(home).stdout.splitlines()
    assert plain[1:2] == ["- Telegram default: installed, configured, enabled, token=***"] and len(plain) == 5
    every = cli(home, "--all").stdout.splitlines()
    assert every[1:3] == [
        "- Telegram default: installed, configured, enabled, token=***",
        "- IRC default: installed, not configured, disabled",
    ]
    assert every[3:] == FOOTER
    doc = json.loads(cli(home, "--all", "--json").stdout)["chat"]
    assert doc["irc"] == {"accounts": [], "label": "IRC", "docsPath": "/channels/irc", "installed": True, "origin": "available"}
    assert doc["telegram"]["origin"] == "configured"
    assert "irc" not in json.loads(cli(home, "--json").stdout)["chat"]


def test_an_invalid_config_is_refused(tmp_path: Path) -> None:
    home = make_home(tmp_path, {"gateway": {"port": "x"}}, log_file=False)
    out = cli(home)
    assert out.returncode == 78 and out.stdout == ""
    assert out.stderr.splitlines()[0] == f"OpenClaw config is invalid: {home / '.openclaw' / 'openclaw.json'}"
    assert "- gateway.port: must be integer" in out.stderr.splitlines()
    js = cli(home, "--json")
    assert js.returncode == 78
    assert json.loads(js.stdout)["issues"] == [{"path": "gateway.port", "message": "must be integer"}]
    (home / ".openclaw" / "openclaw.json").write_text("{nope")
    assert cli(home).returncode == 78


def test_the_human_form_shows_the_running_gateways_snapshot(tmp_path: Path) -> None:
    """The gateway has the bot token from its environment, this CLI has not: the running gateway
    says the account is configured; --json (config only) and a stopped gateway cannot know it."""
    with BotApi() as api:
        port = free_port()
        cfg = local_config(port=port)
        cfg["channels"] = {"telegram": {"apiRoot": api.api_root, "dmPolicy": "pairing"}}
        home = make_home(tmp_path, cfg)
        line = "- Telegram default: installed, {}, enabled, token=***"
        assert cli(home).stdout.splitlines()[1] == line.format("not configured")
        with GatewayProcess(tmp_path, home, env={"TELEGRAM_BOT_TOKEN": api.token}) as gw:
            gw.wait_ready(port, timeout=30)
            live = cli(home)
            assert live.returncode == 0, live.stderr
            assert live.stdout.splitlines()[1] == line.format("configured"), gw.output()
            assert json.loads(cli(home, "--json").stdout)["chat"]["telegram"]["accounts"] == ["default"]
        assert cli(home).stdout.splitlines()[1] == line.format("not configured")


def _published(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get("OPENCLAW_REFERENCE_BIN")
    if not binary:
        pytest.skip("OPENCLAW_REFERENCE_BIN is not set: install the published gateway with ../shared/tools/install-reference.sh")
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update(HOME=str(home), NO_COLOR="1", TELEGRAM_BOT_TOKEN="")
    return subprocess.run([binary, "channels", "list", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_published_cli_prints_the_same_telegram_inventory(tmp_path: Path) -> None:
    """Telegram is bundled with the published CLI (IRC is a plugin it would install): its lines,
    the footer and the JSON entry are ours."""
    home = make_home(tmp_path, {"channels": {"telegram": CHANNELS["telegram"]}}, log_file=False)
    theirs = _published(home)
    assert theirs.returncode == 0, theirs.stderr
    ours = cli(home)
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    assert json.loads(cli(home, "--json").stdout) == json.loads(_published(home, "--json").stdout)
    empty = make_home(tmp_path / "empty")
    assert cli(empty).stdout == _published(empty).stdout
