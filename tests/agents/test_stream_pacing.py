"""A streamed answer costs linear work: the agent loop on a virtual clock, effects performed here.

One turn of the core (``gateway_core.agents.loop.run_turn``) is stepped by hand against the
in-memory store, with a model stream of N text deltas that arrive ``step_s`` apart on the run's
clock. What is counted is work, not time: how many ``agent``/``chat`` delta events the turn
publishes and how many characters of text they carry (each carries the cumulative text, so one
event per upstream delta is O(N²) characters), and what the route watching an ``http`` run gets
(every delta, once).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.core_driver import WALL0, SimHost
from gateway_core.agents.effects import AwaitLane, ModelClose, ModelNext, ModelOpen, StoreCall, Streamed, TurnWritten
from gateway_core.agents.events import ROUTE_TEXT, TEXT_PACE_S
from gateway_core.agents.loop import TurnSpec
from gateway_core.app.effects import Publish, Spawn
from gateway_core.app.gateway import ConnView
from gateway_core.app.handlers.runs import start_route_turn
from gateway_core.providers.types import StreamEnd, TextDelta, UsageReport

RUN = "run-pacing-1"
#: When (the run's clock) each Publish of the last ``drive`` was made, by ``id()``.
sent_at: dict[int, float] = {}
#: The run's ``seq`` when the last ``drive`` ended.
final_seq: list[int] = []
#: Every ``ModelNext.flush_at`` the last ``drive`` was asked.
flush_ats: list[float | None] = []


def drive(
    deltas: list[str], step_s: float, surface: str = "http", *, at: list[float] | None = None, flush: bool = False,
    heard: bool = True,
) -> list[Publish]:
    """Run one turn whose model streams ``deltas`` (``step_s`` apart, or at the times ``at``); every
    ``Publish`` it made. With ``flush``, the host honours ``ModelNext.flush_at`` as the Trio one
    does: when the held text is due before the next event arrives, it answers ``due`` then. With
    ``heard`` a client is connected (events are built only when someone could receive them)."""
    host = SimHost("token", "T", "P")
    app = host.app
    flush_ats.clear()
    if heard:
        app.conns["listener"] = ConnView("listener", None, None)  # type: ignore[arg-type]
    agent = app.roster.get("main")
    assert agent is not None
    spec = TurnSpec(agent=agent, session_key="agent:main:main", message="say a lot", surface=surface)
    start_route_turn(app, spec, RUN, now=0.0, wall_ms=WALL0)
    published: list[Publish] = []
    jobs = []

    def take(when: float = 0.0) -> None:
        for out in app.take_outbox():
            if isinstance(out, Publish):
                published.append(out)
                sent_at[id(out)] = when
            elif isinstance(out, Spawn):
                jobs.append(out.job)

    take()
    (job,) = jobs
    now = 0.0
    events: list[Any] = [TextDelta(d) for d in deltas]
    events += [UsageReport(input=3, output=len(deltas), total=3 + len(deltas)), StreamEnd(finish_reason="stop")]
    times = list(at) if at is not None else []
    job.step(None, now=now, wall_ms=WALL0)
    take()
    for _ in range(len(events) + 100):  # bounded: every effect of the turn, then it is done
        effect = job.pending
        if effect is None:
            break
        value: Any = None
        if isinstance(effect, StoreCall):
            value = getattr(host.store, effect.method)(*effect.args, **effect.kwargs)
        elif isinstance(effect, ModelOpen):
            assert effect.run_id == RUN  # the host can hold this run's stream for its route
            value = 1
        elif isinstance(effect, ModelNext):
            flush_ats.append(effect.flush_at)
            arrives = (times.pop(0) if times else now) if at is not None else now + step_s
            if flush and effect.flush_at is not None and effect.flush_at < arrives:
                now = effect.flush_at
                if at is not None:
                    times.insert(0, arrives)
                value = Streamed(None, "offline/echo", due=True)
            else:
                now = max(now, arrives)
                value = Streamed(events.pop(0) if events else None, "offline/echo")
        elif isinstance(effect, AwaitLane | ModelClose | TurnWritten):
            value = None
        else:
            raise AssertionError(f"unexpected effect {effect!r}")
        job.step(value, now=now, wall_ms=WALL0 + int(now * 1000))
        take(now)
    assert job.pending is None, "the turn did not end"
    final_seq[:] = [app.runs.get(RUN).seq]  # type: ignore[union-attr]
    return published


def assistant_events(published: list[Publish]) -> list[dict[str, Any]]:
    return [p.payload for p in published if p.event == "agent" and p.payload.get("stream") == "assistant"]


def chat_deltas(published: list[Publish]) -> list[dict[str, Any]]:
    return [p.payload for p in published if p.event == "chat" and p.payload.get("state") == "delta"]


@pytest.mark.parametrize("n", [1000, 4000])
def test_a_long_answer_publishes_text_at_a_bounded_rate(n: int) -> None:
    """Deltas 1 ms apart: at most one delta pair per pace (75 ms) plus the first and the last,
    so the characters published grow with the answer's length × its duration, not with N²."""
    deltas = [f"w{i:05d} " for i in range(n)]
    text = "".join(deltas)
    published = drive(deltas, 0.001)
    agents, chats = assistant_events(published), chat_deltas(published)
    duration = n * 0.001
    bound = 2 + int(duration / TEXT_PACE_S) + 1
    assert 2 <= len(agents) <= bound and len(chats) == len(agents), (len(agents), bound)
    assert "".join(a["data"]["delta"] for a in agents) == text  # nothing lost, nothing twice
    assert "".join(c["deltaText"] for c in chats) == text
    assert agents[-1]["data"]["text"] == text and chats[-1]["message"]["content"][0]["text"] == text
    carried = sum(len(a["data"]["text"]) for a in agents) + sum(len(c["message"]["content"][0]["text"]) for c in chats)
    assert carried <= 2 * bound * len(text)  # per upstream delta this was about n * len(text)
    final = [p.payload for p in published if p.event == "chat" and p.payload.get("state") == "final"]
    assert final and final[0]["message"]["content"][0]["text"] == text


def test_a_burst_goes_out_as_its_first_delta_then_the_rest_before_the_end() -> None:
    """On a clock that does not move, the first delta goes out at once and the rest, held, goes out
    as one pair when the model call ends, before the run's next event (usage, lifecycle)."""
    deltas = [f"d{i} " for i in range(500)]
    published = drive(deltas, 0.0)
    agents = assistant_events(published)
    assert [a["data"]["delta"] for a in agents] == [deltas[0], "".join(deltas[1:])]
    kinds = [(p.event, p.payload.get("stream") or p.payload.get("state")) for p in published if p.event in ("agent", "chat")]
    last_text = max(i for i, k in enumerate(kinds) if k in (("agent", "assistant"), ("chat", "delta")))
    assert kinds[last_text + 1:][0] == ("agent", "usage")
    seqs = [p.payload["seq"] for p in published if p.event == "agent"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps: a held delta takes no seq


def test_the_route_gets_every_delta_and_no_connection_does() -> None:
    deltas = [f"piece{i} " for i in range(300)]
    published = drive(deltas, 0.0)
    route = [p for p in published if p.event == ROUTE_TEXT]
    assert [p.payload["delta"] for p in route] == deltas
    assert all(p.to == frozenset() and p.payload["runId"] == RUN for p in route)
    chat_surface = drive(deltas, 0.0, surface="chat")
    assert not [p for p in chat_surface if p.event == ROUTE_TEXT]  # only route-started runs need them


def test_held_text_goes_out_when_due_while_the_model_pauses() -> None:
    """Three deltas 10 ms apart, then the model pauses 5 s: the two held deltas go out at the pace
    (75 ms after the first), before the next upstream event; then the rest as usual. Nothing is
    sent twice, the run's seq has no gap, the final is the whole text."""
    deltas = ["one ", "two ", "three ", "four"]
    at = [0.01, 0.02, 0.03, 5.0, 5.0, 5.0]  # the four deltas, usage, end
    published = drive(deltas, 0.0, surface="chat", at=at, flush=True)
    agents = [p for p in published if p.event == "agent" and p.payload.get("stream") == "assistant"]
    assert [a.payload["data"]["delta"] for a in agents] == ["one ", "two three ", "four"]
    assert [sent_at[id(a)] for a in agents] == [0.01, pytest.approx(0.01 + TEXT_PACE_S), 5.0]
    chats = [p for p in published if p.event == "chat" and p.payload.get("state") == "delta"]
    assert [c.payload["deltaText"] for c in chats] == ["one ", "two three ", "four"]
    assert [sent_at[id(c)] for c in chats] == [sent_at[id(a)] for a in agents]
    seqs = [p.payload["seq"] for p in published if p.event == "agent"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    final = [p.payload for p in published if p.event == "chat" and p.payload.get("state") == "final"]
    assert len(final) == 1 and final[0]["message"]["content"][0]["text"] == "one two three four"
    # Without the host's flush (a host that ignores flush_at), the held text waits for "four".
    later = drive(deltas, 0.0, surface="chat", at=at)
    held = [p for p in later if p.event == "agent" and p.payload.get("stream") == "assistant"]
    assert [h.payload["data"]["delta"] for h in held] == ["one ", "two three four"]


def test_chat_deltas_may_be_dropped_for_a_slow_client_and_nothing_else() -> None:
    """protocol.md §13.5: chat deltas are ``dropIfSlow`` (each carries the cumulative text, so the
    next one makes up for a dropped one); agent events and the chat final are never dropped."""
    published = drive(["a", "b", "c"], 0.1, surface="chat")
    chats = [p for p in published if p.event == "chat"]
    assert {p.payload["state"] for p in chats} >= {"status", "delta", "final"}
    assert all(p.drop_if_slow == (p.payload["state"] == "delta") for p in chats)
    assert [p for p in chats if p.payload["state"] == "delta"]
    assert not [p for p in published if p.event == "agent" and p.drop_if_slow]


def test_with_nobody_connected_only_the_route_text_is_built_and_the_seq_moves_the_same() -> None:
    """An HTTP route's run on a gateway no client watches: no ``agent``/``chat`` payloads are built
    (they would reach nobody), the route still gets every delta, and the run's ``seq`` ends where
    it would have had every event been sent (a client connecting later sees no step back)."""
    deltas = [f"w{i} " for i in range(50)]
    heard = drive(deltas, 0.01)
    seq_heard = final_seq[0]
    alone = drive(deltas, 0.01, heard=False)
    assert {p.event for p in alone} == {ROUTE_TEXT}
    assert [p.payload["delta"] for p in alone] == deltas == [p.payload["delta"] for p in heard if p.event == ROUTE_TEXT]
    assert final_seq[0] == seq_heard and seq_heard > 2


def test_with_nobody_connected_no_read_waits_for_a_flush_and_the_seq_moves_the_same() -> None:
    """Unheard, the held text has no deadline (the host reads without a timer: no task of its own
    per stream): the flush a deadline would have made is counted at the next delta, as of its due
    time, so the ``seq`` ends where the paced, heard run's does, pauses longer than the pace and
    several paces at once included."""
    at = [0.0, 0.01, 0.02, 0.2, 0.21, 0.5, 0.9, 0.91, 0.92, 1.5, 1.52, 1.53, 1.9]
    deltas = [f"d{i} " for i in range(len(at))]
    drive(deltas, 0, at=list(at), flush=True)
    seq_heard, heard_flush_ats = final_seq[0], list(flush_ats)
    alone = drive(deltas, 0, at=list(at), flush=True, heard=False)
    assert [p.payload["delta"] for p in alone] == deltas
    assert any(f is not None for f in heard_flush_ats) and all(f is None for f in flush_ats)
    assert final_seq[0] == seq_heard
