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
from gateway_core.agents.effects import AwaitLane, ModelClose, ModelNext, ModelOpen, StoreCall, Streamed
from gateway_core.agents.events import ROUTE_TEXT, TEXT_PACE_S
from gateway_core.agents.loop import TurnSpec
from gateway_core.app.effects import Publish, Spawn
from gateway_core.app.handlers.runs import start_route_turn
from gateway_core.providers.types import StreamEnd, TextDelta, UsageReport

RUN = "run-pacing-1"


def drive(deltas: list[str], step_s: float, surface: str = "http") -> list[Publish]:
    """Run one turn whose model streams ``deltas`` (``step_s`` apart); every ``Publish`` it made."""
    host = SimHost("token", "T", "P")
    app = host.app
    agent = app.roster.get("main")
    assert agent is not None
    spec = TurnSpec(agent=agent, session_key="agent:main:main", message="say a lot", surface=surface)
    start_route_turn(app, spec, RUN, now=0.0, wall_ms=WALL0)
    published: list[Publish] = []
    jobs = []

    def take() -> None:
        for out in app.take_outbox():
            if isinstance(out, Publish):
                published.append(out)
            elif isinstance(out, Spawn):
                jobs.append(out.job)

    take()
    (job,) = jobs
    now = 0.0
    events: list[Any] = [TextDelta(d) for d in deltas]
    events += [UsageReport(input=3, output=len(deltas), total=3 + len(deltas)), StreamEnd(finish_reason="stop")]
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
            now += step_s
            value = Streamed(events.pop(0) if events else None, "offline/echo")
        elif isinstance(effect, AwaitLane | ModelClose):
            value = None
        else:
            raise AssertionError(f"unexpected effect {effect!r}")
        job.step(value, now=now, wall_ms=WALL0 + int(now * 1000))
        take()
    assert job.pending is None, "the turn did not end"
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
