"""IRC end to end with a real ngIRCd and a second client as the human (our gateway; the published
IRC channel is an external plugin, channels-observed.md records what it does).

The acceptance flow: an unknown nick DMs the bot → one PRIVMSG with the pairing code (a second DM
while pending: nothing); ``openclaw pairing approve irc <code>``; the next DM gets the agent's
reply; in the allowlisted channel a mention gets a reply and chatter without one is ignored; in a
channel that is not allowlisted both are ignored; newlines become spaces and long replies are
split at word boundaries (≤ 350 characters); ``message send`` reaches a channel;
``channels status --probe`` shows the account connected (the probe registers as ``ocbot_``).
Then the server goes away and comes back: the bot reconnects and rejoins by itself.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from agent_gateways import observed_config
from gateway_proc import GatewayProcess, free_port, make_home, openclaw
from ircd import Human, Ngircd, requires_ngircd
from upstream import ScriptedUpstream, Text, last_user_text

KEY = "sk-upstream-test-key"
WAIT = 30.0
QUIET = 3.0
CODE = re.compile(r"openclaw pairing approve irc ([A-HJ-NP-Z2-9]{8})")


def _irc_config(port: int, upstream: str, irc_port: int, **irc: object) -> dict:
    cfg = observed_config(port, upstream)
    cfg["channels"] = {"irc": {"enabled": True, "host": "127.0.0.1", "port": irc_port, "tls": False, "nick": "ocbot",
                               "channels": ["#oc", "#other"], "dmPolicy": "pairing", "groups": {"#oc": {}}, **irc}}
    return cfg


def _from_bot(line: str, target: str) -> bool:
    return line.startswith(":ocbot!") and f" PRIVMSG {target} :" in line


def _in_names(lines: list[str], channel: str, nick: str) -> bool:
    """Whether a NAMES reply (``353``) read so far lists ``nick`` in ``channel``."""
    for line in lines:
        head, _, names = line.partition(" :")
        if " 353 " in head and head.endswith(channel) and nick in [n.lstrip("@+") for n in names.split()]:
            return True
    return False


LONG = "\n".join(f"Paragraph {i}: " + " ".join(f"word{i}{j}" for j in range(40)) for i in range(4))


@requires_ngircd
def test_irc_flow(tmp_path: Path) -> None:
    with Ngircd(tmp_path / "ircd") as ircd, ScriptedUpstream(api_key=KEY) as up:
        up.behaviour = lambda rec: Text(LONG) if "LONGIRC" in last_user_text(rec.body if isinstance(rec.body, dict) else {}) else None
        alice = Human(ircd.port, "alice")
        alice.join("#oc")
        alice.join("#other")
        port = free_port()
        home = make_home(tmp_path, _irc_config(port, up.base_url, ircd.port))
        with GatewayProcess(tmp_path, home) as gw:
            gw.wait_ready(port, timeout=30)
            assert alice.expect(lambda ln: ln.startswith(":ocbot!") and " JOIN " in ln and "#oc" in ln, WAIT), gw.output()
            alice.expect(lambda ln: ln.startswith(":ocbot!") and " JOIN " in ln and "#other" in ln, WAIT)

            # unknown nick: the pairing code in one PRIVMSG (not a NOTICE), once
            alice.say("ocbot", "hello bot")
            line = alice.expect(lambda ln: _from_bot(ln, "alice"), WAIT)
            assert line is not None, gw.output()
            text = line.split(" :", 1)[1]
            assert text.startswith("OpenClaw: access not configured.") and "Your IRC id: alice!" in text and "\n" not in text
            code = CODE.search(text).group(1)
            alice.say("ocbot", "second while pending")
            assert alice.expect(lambda ln: _from_bot(ln, "alice"), QUIET) is None

            approved = openclaw(home, "pairing", "approve", "irc", code)
            assert approved.returncode == 0, approved.stderr
            assert re.search(r"Approved irc sender alice!\S+@127\.0\.0\.1\.", approved.stdout), approved.stdout

            alice.say("ocbot", "now paired hello")
            line = alice.expect(lambda ln: _from_bot(ln, "alice"), WAIT)
            assert line is not None and line.endswith(": now paired hello") and "upstream-reply-" in line, (line, gw.output())

            # the allowlisted channel: a mention is answered, chatter is not
            alice.say("#oc", "ocbot: channel question")
            line = alice.expect(lambda ln: _from_bot(ln, "#oc"), WAIT)
            assert line is not None and line.endswith(": ocbot: channel question"), (line, gw.output())
            alice.say("#oc", "just chatting here")
            alice.say("#other", "ocbot: other question")
            alice.say("#other", "more chatter")
            assert alice.expect(lambda ln: _from_bot(ln, "#oc") or _from_bot(ln, "#other"), QUIET) is None

            # a long multi-line reply: one line of text, cut at word boundaries, ≤ 350 characters
            alice.say("ocbot", "LONGIRC please")
            pieces = []
            expected = LONG.replace("\n", " ")
            while " ".join(pieces) != expected:
                line = alice.expect(lambda ln: _from_bot(ln, "alice"), WAIT)
                assert line is not None, (pieces, gw.output())
                pieces.append(line.split(" :", 1)[1])
            assert len(pieces) >= 4 and all(len(p) <= 350 for p in pieces), [len(p) for p in pieces]

            sent = openclaw(home, "message", "send", "--channel", "irc", "--target", "#oc", "--message", "Hello from OpenClaw")
            assert sent.returncode == 0 and sent.stdout.startswith("✅ Sent via irc. Message ID: "), sent.stdout + sent.stderr
            assert alice.expect(lambda ln: _from_bot(ln, "#oc") and ln.endswith(" :Hello from OpenClaw"), WAIT)

            status = openclaw(home, "channels", "status", "--probe")
            assert status.returncode == 0, status.stderr
            line = next(ln for ln in status.stdout.splitlines() if ln.startswith("- IRC default:"))
            assert line.startswith("- IRC default: enabled, configured, running, connected") and "works" in line, line
            assert "mode:plain" in line and f"url:127.0.0.1:{ircd.port}" in line

            # the server goes away and comes back: reconnect, rejoin, answer
            alice.close()
            ircd.restart()
            bob = Human(ircd.port, "alice")
            bob.join("#oc")
            # the bot is back in #oc: either it was there before us (the NAMES list says so) or it joins now
            if not _in_names(bob.lines, "#oc", "ocbot"):
                assert bob.expect(lambda ln: ln.startswith(":ocbot!") and " JOIN " in ln and "#oc" in ln, WAIT), gw.output()
            bob.say("#oc", "ocbot: are you back?")
            line = bob.expect(lambda ln: _from_bot(ln, "#oc"), WAIT)
            assert line is not None and line.endswith(": ocbot: are you back?"), gw.output()
            bob.close()
            time.sleep(0.2)
        log = (tmp_path / "gw.log").read_text()
        assert "drop channel #other (not allowlisted)" in log and "drop channel #oc (missing-mention)" in log


@requires_ngircd
def test_irc_tls_password_and_nick_collision(tmp_path: Path) -> None:
    """TLS with a server password; the nick is taken, so the bot registers as ``ocbot_``."""
    with Ngircd(tmp_path / "ircd", password="s3cret", tls=True) as ircd:
        squatter = Human(ircd.port, "ocbot", password="s3cret")
        squatter.join("#oc")
        port = free_port()
        cfg = _irc_config(port, "http://127.0.0.1:9/v1", ircd.tls_port, tls=True, password="s3cret", tlsCaFile=str(ircd.cert))
        cfg["models"] = {}
        cfg["agents"] = {}
        home = make_home(tmp_path, cfg)
        with GatewayProcess(tmp_path, home) as gw:
            gw.wait_ready(port, timeout=30)
            assert squatter.expect(lambda ln: ln.startswith(":ocbot_!") and " JOIN " in ln, WAIT), gw.output()
            status = openclaw(home, "channels", "status", "--json")
            account = json.loads(status.stdout)["channelAccounts"]["irc"][0]
            assert account["connected"] is True and account["nick"] == "ocbot_" and account["mode"] == "tls", account
        squatter.close()


@requires_ngircd
def test_irc_wrong_password_is_terminal(tmp_path: Path) -> None:
    with Ngircd(tmp_path / "ircd", password="right") as ircd:
        port = free_port()
        cfg = _irc_config(port, "http://127.0.0.1:9/v1", ircd.port, password="wrong")
        home = make_home(tmp_path, cfg)
        with GatewayProcess(tmp_path, home, env={"OPENCLAW_SKIP_CHANNELS": ""}) as gw:
            gw.wait_ready(port, timeout=30)
            deadline = time.monotonic() + WAIT
            while True:
                status = openclaw(home, "channels", "status", "--json")
                account = json.loads(status.stdout)["channelAccounts"]["irc"][0]
                if account.get("terminal"):
                    break
                assert time.monotonic() < deadline, (account, gw.output())
                time.sleep(0.2)
            assert account["running"] is False and account["healthState"] == "terminal-disconnect"
            assert "IRC login failed" in account["lastError"] and "password" in account["lastError"], account


def test_skip_channels_env(tmp_path: Path) -> None:
    """``OPENCLAW_SKIP_CHANNELS=1``: configured channels are not started (status tells so)."""
    port = free_port()
    cfg = _irc_config(port, "http://127.0.0.1:9/v1", free_port())
    home = make_home(tmp_path, cfg)
    with GatewayProcess(tmp_path, home, env={"OPENCLAW_SKIP_CHANNELS": "1"}) as gw:
        gw.wait_ready(port, timeout=30)
        status = openclaw(home, "channels", "status", "--json")
        account = json.loads(status.stdout)["channelAccounts"]["irc"][0]
        assert account["running"] is False and account.get("lastStartAt") is None, account
        assert account["configured"] is True and account["healthState"] == "unmanaged", account
        assert "OPENCLAW_SKIP_CHANNELS=1: channels not started" in gw.stdout
