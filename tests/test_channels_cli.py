"""The channel commands without a gateway: ``channels status`` falls back to the config, ``pairing``
works on the local state (and reports mistakes in the published wording)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from agent_gateways import REFERENCE
from gateway_proc import free_port, make_home, openclaw

from gateway_core.channels import pairing as P
from gateway_trio.channels.store import ChannelStore


def _config(port: int) -> dict:
    return {"gateway": {"mode": "local", "port": port, "auth": {"mode": "token", "token": "T"}},
            "channels": {"telegram": {"botToken": "123:abc"}, "irc": {"host": "irc.example.net", "nick": "ocbot", "enabled": False}}}


def test_channels_status_config_only_when_the_gateway_is_down(tmp_path: Path) -> None:
    home = make_home(tmp_path, _config(free_port()))
    out = openclaw(home, "channels", "status")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("Gateway not reachable: ")
    lines = out.stdout.splitlines()
    assert lines[0] == "Gateway not reachable; showing config-only status." and lines[2] == "Mode: local"
    assert "- Telegram default: enabled, configured, mode:polling, token:***" in lines
    assert "- IRC default: disabled, configured, mode:tls, url:irc.example.net:6697" in lines
    js = json.loads(openclaw(home, "channels", "status", "--json").stdout)
    assert js["gatewayReachable"] is False and js["configOnly"] is True and js["configuredChannels"] == ["telegram", "irc"]
    if REFERENCE:  # the published CLI prints the same Telegram line from the same config
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}, "HOME": str(home)}
        theirs = subprocess.run([REFERENCE, "channels", "status"], env=env, capture_output=True, text=True, timeout=120)
        assert "- Telegram default: enabled, configured, mode:polling, token:***" in theirs.stdout.splitlines(), theirs.stdout


def test_pairing_commands_on_the_local_state(tmp_path: Path) -> None:
    home = make_home(tmp_path, _config(free_port()))
    state = home / ".openclaw"
    empty = openclaw(home, "pairing", "list", "telegram")
    assert empty.returncode == 0 and empty.stdout == "No pending telegram pairing requests.\n"
    store = ChannelStore(state, now_ms=lambda: int(time.time() * 1000), codes=iter(["ABCD2345"]))
    try:
        store.pairing_upsert("telegram", "default", "4242", {"firstName": "Ada"})
    finally:
        store.close()
    listed = openclaw(home, "pairing", "list", "telegram")
    assert listed.returncode == 0 and "Pairing requests (1)" in listed.stdout and "ABCD2345" in listed.stdout
    bad = openclaw(home, "pairing", "approve", "telegram", "ZZZZ2222")
    assert bad.returncode == 1
    assert bad.stderr.strip() == 'No pending pairing request found for code "ZZZZ2222". Run openclaw pairing list --channel telegram to list pending requests.'
    unknown = openclaw(home, "pairing", "list", "matrix")
    assert unknown.returncode == 1 and 'Channel "matrix" does not support pairing.' in unknown.stderr
    blank = openclaw(home, "pairing", "list", "telegram", "--account", " ")
    assert blank.returncode == 1 and blank.stderr.strip() == "--account must not be blank"


@pytest.mark.parametrize("code_case", [str.upper, str.lower])
def test_pairing_approve_bootstraps_the_owner_once(tmp_path: Path, code_case) -> None:  # noqa: ANN001
    home = make_home(tmp_path, _config(free_port()))
    state = home / ".openclaw"
    store = ChannelStore(state, now_ms=lambda: int(time.time() * 1000), codes=iter(["ABCD2345", "EFGH6789"]))
    try:
        store.pairing_upsert("telegram", "default", "4242", {})
        store.pairing_upsert("telegram", "default", "7", {})
    finally:
        store.close()
    first = openclaw(home, "pairing", "approve", "telegram", code_case("ABCD2345"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["Approved telegram sender 4242.",
                                         "Command owner configured telegram:4242 (commands.ownerAllowFrom was empty)."]
    second = openclaw(home, "pairing", "approve", "EFGH6789")  # one pairing channel configured: it is the default
    assert second.returncode == 0 and second.stdout.splitlines() == ["Approved telegram sender 7."]
    cfg = json.loads((state / "openclaw.json").read_text())
    assert cfg["commands"]["ownerAllowFrom"] == ["telegram:4242"] and (state / "openclaw.json.bak").exists()
    store = ChannelStore(state, now_ms=lambda: int(time.time() * 1000))
    try:
        assert store.pairing_allowed("telegram", "default") == ["4242", "7"]
        assert store.pairing_pending("telegram") == []
    finally:
        store.close()
    assert P.owner_entry("telegram", "4242") == "telegram:4242"
