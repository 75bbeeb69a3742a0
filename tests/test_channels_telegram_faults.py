"""Telegram when the Bot API misbehaves (channels-observed.md).

* The API goes away: the long poll fails, polling retries with backoff and resumes with the same
  offset when the API is back; a DM sent meanwhile is answered once (ours and the published one).
* ``sendMessage`` answers 500: the reply is not sent again (no blind replay: it may have arrived),
  and the chat gets the published "couldn't confirm" notice instead (ours).
* Status tells the truth meanwhile: disconnected with the error while the API is down.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from agent_gateways import KINDS
from botapi import Fault
from channel_gateways import telegram_gateway

from gateway_core.channels.delivery import UNCONFIRMED_NOTICE

USER = 4242
WAIT = 90.0


@pytest.mark.parametrize("kind", KINDS)
def test_api_outage_resumes_with_the_same_offset(kind: str, tmp_path: Path) -> None:
    with telegram_gateway(kind, tmp_path, dmPolicy="allowlist", allowFrom=[str(USER)]) as rig:
        api = rig.api
        assert api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= 2, 120), rig.output()
        api.dm(USER, "before the outage")
        assert api.wait_for(lambda a: any(b["text"].endswith(": before the outage") for b in a.sent(USER)), WAIT), rig.output()
        api.down()
        if kind == "ours":
            deadline = time.monotonic() + 30
            while True:
                doc = json.loads(rig.cli("channels", "status", "--json").stdout)
                (account,) = doc["channelAccounts"]["telegram"]
                if account["connected"] is False:
                    break
                assert time.monotonic() < deadline, account
                time.sleep(0.5)
            assert "getUpdates failed" in account["lastError"] and account["running"] is True
        uid = api.dm(USER, "sent while the api was down")
        time.sleep(3)
        polls_before = len(api.calls_of("getUpdates"))
        api.up()
        assert api.wait_for(lambda a: any(b["text"].endswith(": sent while the api was down") for b in a.sent(USER)), WAIT), rig.output()
        resumed = [c for c in api.calls_of("getUpdates")[polls_before:] if c.status == 200]
        assert resumed and resumed[0].body.get("offset", 0) <= uid  # the same offset: nothing was skipped
        time.sleep(2)
        assert sum(b["text"].endswith(": sent while the api was down") for b in api.sent(USER)) == 1


def test_ambiguous_500_is_not_resent(tmp_path: Path) -> None:
    with telegram_gateway("ours", tmp_path, dmPolicy="allowlist", allowFrom=[str(USER)]) as rig:
        api = rig.api
        assert api.wait_for(lambda a: len(a.calls_of("getUpdates")) >= 2, 60), rig.output()
        api.fail("sendMessage", Fault(500, "Internal Server Error", after_delivery=True))
        api.dm(USER, "maybe delivered")
        assert api.wait_for(lambda a: any(b["text"] == UNCONFIRMED_NOTICE for b in a.sent(USER)), WAIT), rig.output()
        attempts = [c for c in api.calls_of("sendMessage") if c.body["text"].endswith(": maybe delivered")]
        assert [c.status for c in attempts] == [500]  # sent once; the platform may have shown it
        assert sum(b["text"].endswith(": maybe delivered") for b in api.sent(USER)) == 1
        log = (tmp_path / "gw.log").read_text()
        assert "unknown_after_send; refusing blind replay" in log
