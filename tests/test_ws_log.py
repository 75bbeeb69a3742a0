"""``--ws-log full|compact`` do what they say (issue 9 item 13; runtime-cli.md §9.3).

``auto`` logs only failed or slow (≥ 50 ms) answers unless ``--verbose``; ``compact`` (``--compact``)
one line per request/response pair with its duration, plus events, ``conn=`` only when it changes;
``full`` every frame, one line each, each with ``conn=`` and ``id=``.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gateway_proc import TOKEN, GatewayProcess, free_port, local_config, make_home, openclaw

from gateway_trio.wslog import WsLog

A, B = "c4de25ac-aaaa-bbbb-cccc-0123456717ee", "587db438-aaaa-bbbb-cccc-012345675691"
ERR = SimpleNamespace(code="INVALID_REQUEST", message="unknown method: no.such.method")


def _lines(style: str, verbose: bool = False) -> list[str]:
    out: list[str] = []
    log = WsLog(style, verbose=verbose, emit=lambda level, line: out.append(f"{level} {line}"))
    log.request(A, "r1", "health")
    log.response(A, "r1", "health", 0)
    log.request(A, "r2", "config.get")
    log.response(A, "r2", "config.get", 654)
    log.event(A, "presence")
    log.request(B, "r1", "no.such.method")
    log.response(B, "r1", "no.such.method", 3, ERR)
    log.parse_error(B, "invalid JSON")
    return out


def test_auto_logs_only_failed_and_slow_answers() -> None:
    assert _lines("auto") == [
        "info ⇄ res ✓ config.get 654ms conn=c4de25ac…17ee id=r2",
        "info ⇄ res ✗ no.such.method 3ms errorCode=INVALID_REQUEST errorMessage=unknown method: no.such.method "
        "conn=587db438…5691 id=r1",
        "warn ✗ parse-error error=invalid JSON conn=587db438…5691",
    ]


def test_compact_pairs_requests_and_prints_conn_when_it_changes() -> None:
    expected = [
        "info ⇄ res ✓ health 0ms conn=c4de25ac…17ee id=r1",
        "info ⇄ res ✓ config.get 654ms id=r2",
        "info → event presence",
        "info ⇄ res ✗ no.such.method 3ms errorCode=INVALID_REQUEST errorMessage=unknown method: no.such.method "
        "conn=587db438…5691 id=r1",
        "warn ✗ parse-error error=invalid JSON conn=587db438…5691",
    ]
    assert _lines("compact") == expected
    assert _lines("auto", verbose=True) == expected  # --verbose alone: the published pairing


def test_full_logs_every_frame_with_conn_and_id() -> None:
    assert _lines("full")[:5] == [
        "info ← req health conn=c4de25ac…17ee id=r1",
        "info → res ✓ health 0ms conn=c4de25ac…17ee id=r1",
        "info ← req config.get conn=c4de25ac…17ee id=r2",
        "info → res ✓ config.get 654ms conn=c4de25ac…17ee id=r2",
        "info → event presence conn=c4de25ac…17ee",
    ]


def test_long_request_ids_are_shortened() -> None:
    out: list[str] = []
    log = WsLog("compact", verbose=False, emit=lambda level, line: out.append(line))
    log.request(A, "5:6879b6d0-9a2b-4c3d-8e9f-0a1b2c3de238", "health")
    log.response(A, "5:6879b6d0-9a2b-4c3d-8e9f-0a1b2c3de238", "health", 1)
    assert out == ["⇄ res ✓ health 1ms conn=c4de25ac…17ee id=5:6879b6d0-9…e238"]


@pytest.mark.parametrize(
    ("flags", "present", "absent"),
    [
        ([], [], ["← req", "→ event"]),  # (a fast answer is not logged either, but "fast" is the machine's call)
        (["--compact"], ["⇄ res ✓ health "], ["← req"]),
        (["--ws-log", "compact"], ["⇄ res ✓ health "], ["← req"]),
        (["--ws-log", "full"], ["← req health conn=", "→ res ✓ health "], ["⇄ res ✓ health"]),
    ],
    ids=["auto", "--compact", "compact", "full"],
)
def test_gateway_console_shows_the_style(tmp_path: Path, flags: list[str], present: list[str], absent: list[str]) -> None:
    port = free_port()
    home = make_home(tmp_path, local_config(port=port))
    with GatewayProcess(tmp_path, home, *flags) as gw:
        gw.wait_ready(port)
        call = openclaw(home, "gateway", "call", "health", "--token", TOKEN, "--json")
        assert call.returncode == 0, call.stderr
        deadline = time.monotonic() + 10
        while present and time.monotonic() < deadline and not all(p in gw.stdout for p in present):
            time.sleep(0.05)  # the console line follows the answer
        out = gw.stdout
    for text in present:
        assert text in out, out
    for text in absent:
        assert text not in out, out
