"""A broadcast encoded once for many connections (EncodedEvent, ServerConnection.publish_encoded).

The fan-out path must put on the wire exactly what ``publish`` does, connection by connection:
the same bytes, its own increasing ``seq``, the same scope gating and back-pressure results.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from gwcore_harness import Pair, connect_params

from gateway_core import (
    ClientState,
    ConnectionTerminated,
    ConnState,
    EventReceived,
    PublishResult,
    SendText,
    SequenceGap,
    ServerPolicy,
    StateVersion,
)
from gateway_core.broadcast import EncodedEvent, recipient_kind
from gateway_core.frames import EventFrame, encode_bytes

QUIET = ServerPolicy(auto_tick=False, keepalive_interval_ms=None)

PAYLOADS = [
    {"presence": [{"ts": 1, "text": "plain"}]},
    {"text": '"seq":0,"seq":1'},  # the split must not be fooled by the payload's own text
    {"text": "ünïcødé ✓ \u2028", "n": [1, 2.5, None, True]},
    {"big": "x" * 70_000},  # a frame over 64 KiB
    [],
    "a string",
    0,
]


def open_pair(**kw) -> Pair:  # type: ignore[no-untyped-def]
    pair = Pair(policy=QUIET, **kw)
    assert pair.server.state is ConnState.OPEN, pair.server_events
    assert pair.client.state is ClientState.OPEN, pair.client_events
    return pair


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("state_version", [None, StateVersion(presence=7, health=3)])
@pytest.mark.parametrize("profile", [None, "gateway-owner"])
def test_encoded_frame_is_byte_identical_to_encoding_the_event_frame(payload, state_version, profile) -> None:  # type: ignore[no-untyped-def]
    ev = EncodedEvent("presence", payload, state_version=state_version)
    for seq in (1, 9, 10, 99, 100, 12345, 10**12):
        expected = encode_bytes(
            EventFrame(
                event="presence",
                payload=payload,
                seq=seq,
                state_version=state_version if state_version is not None else msgspec.UNSET,
                recipient_profile_id=profile if profile is not None else msgspec.UNSET,
            )
        )
        assert ev.frame(seq, profile) == expected
        assert json.loads(ev.frame(seq, profile))["seq"] == seq


def test_encoded_event_takes_a_raw_payload_as_is() -> None:
    raw = msgspec.Raw(b'{"a":1}')
    assert EncodedEvent("tick", raw).frame(3) == b'{"type":"event","event":"tick","payload":{"a":1},"seq":3}'
    tricky = msgspec.Raw(b'{"seq":0,"x":"seq"}')  # a raw payload may hold the very bytes ``"seq":0``
    assert (
        EncodedEvent("tick", tricky).frame(7)
        == b'{"type":"event","event":"tick","payload":{"seq":0,"x":"seq"},"seq":7}'
    )


def _publish_both(a: Pair, b: Pair, event: str, payload: object, **kw: object) -> tuple[object, object]:  # type: ignore[no-untyped-def]
    """``publish`` on ``a`` and ``publish_encoded`` on ``b``; returns both results (bytes become SENT)."""
    ra = a.server.publish(event, payload, **kw)  # type: ignore[arg-type]
    ev = EncodedEvent(event, payload, state_version=kw.get("state_version"), drop_if_slow=bool(kw.get("drop_if_slow")))  # type: ignore[arg-type]
    rb = b.server.publish_encoded(ev, congested=bool(kw.get("congested")))
    if isinstance(rb, bytes):
        b.server._actions.append(SendText(rb))  # what the shell writes, handed to the peer here
        rb = PublishResult.SENT
    a.pump()
    b.pump()
    return ra, rb


@pytest.mark.parametrize(
    "params",
    [
        connect_params(scopes=["operator.admin"]),
        connect_params(scopes=["operator.read"]),
        connect_params(client_id="test", mode="test", scopes=["operator.read"]),  # gets recipientProfileId
        connect_params(client_id="test", mode="test"),  # no scopes: only unrestricted events
    ],
)
def test_publish_encoded_matches_publish_frame_for_frame(params) -> None:  # type: ignore[no-untyped-def]
    a, b = open_pair(params=params), open_pair(params=params)
    steps = [
        ("presence", {"presence": []}, {}),
        ("tick", {"ts": 1}, {"state_version": StateVersion(presence=2, health=1)}),
        ("bogus.event", {}, {}),
        ("presence", {"presence": [1]}, {"congested": True, "drop_if_slow": True}),
        ("health", {"ok": True}, {"drop_if_slow": True}),
        ("exec.approval.requested", {"id": "x"}, {}),
        ("tick", {"ts": 2}, {"congested": True}),
        ("tick", {"ts": 3}, {}),
    ]
    for event, payload, kw in steps:
        ra, rb = _publish_both(a, b, event, payload, **kw)
        assert ra is rb, (event, kw)
        assert a.server.seq == b.server.seq
    assert a.server_frames == b.server_frames
    assert [e.seq for e in a.client_of(EventReceived)] == [e.seq for e in b.client_of(EventReceived)]
    assert a.client_of(SequenceGap) == b.client_of(SequenceGap)
    assert a.client_of(ConnectionTerminated) == b.client_of(ConnectionTerminated)


def test_each_connection_counts_its_own_seq() -> None:
    pairs = [open_pair() for _ in range(3)]
    pairs[1].server.publish("tick", {"ts": 0})  # one connection is a broadcast ahead
    pairs[1].pump()
    for n in range(1, 4):
        ev = EncodedEvent("tick", {"ts": n})
        for pair in pairs:
            data = pair.server.publish_encoded(ev)
            assert isinstance(data, bytes)
            pair.server._actions.append(SendText(data))
            pair.pump()
    seqs = [[e.seq for e in p.client_of(EventReceived)] for p in pairs]
    assert seqs == [[1, 2, 3], [1, 2, 3, 4], [1, 2, 3]]
    assert all(p.client_of(SequenceGap) == [] for p in pairs)


def test_frame_is_queued_behind_earlier_actions() -> None:
    pair = open_pair()
    pair.server.send_event("models.snapshot", {"models": []})  # queued, not yet taken by the shell
    result = pair.server.publish_encoded(EncodedEvent("tick", {"ts": 1}))
    assert result is PublishResult.SENT
    texts = [json.loads(a.text) for a in pair.server.actions()]
    assert [t["event"] for t in texts] == ["models.snapshot", "tick"]
    assert texts[1]["seq"] == 1


def test_congested_non_droppable_closes_and_nothing_is_returned() -> None:
    pair = open_pair()
    assert pair.server.publish_encoded(EncodedEvent("tick", {"ts": 1}), congested=True) is PublishResult.CLOSED
    pair.pump()
    (term,) = pair.client_of(ConnectionTerminated)
    assert (term.code, term.reason) == (1008, "slow consumer")
    assert pair.server.publish_encoded(EncodedEvent("tick", {"ts": 2})) is PublishResult.FILTERED


def test_connections_with_the_same_grants_share_one_kind() -> None:
    a, b = open_pair(), open_pair()
    reader = open_pair(params=connect_params(scopes=["operator.read"]))
    for pair in (a, b, reader):
        pair.server.publish_encoded(EncodedEvent("update.run.changed", {}))  # admin-only
    assert a.server._kind is b.server._kind
    assert reader.server._kind is not a.server._kind
    assert a.server._kind is not None and a.server._kind.eligible["update.run.changed"] is True
    assert reader.server._kind is not None and reader.server._kind.eligible["update.run.changed"] is False
    assert recipient_kind("operator", frozenset({"operator.read"}), None) is reader.server._kind
