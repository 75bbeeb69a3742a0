"""``SSEEvents.ready``: the events already decoded from bytes received are handed over without
I/O (one ``ModelNext`` answer for a whole fast answer); the end is left to the next read, which
drains the tail; a failure met is raised by the next read, after the events before it."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
import trio

from gateway_core.providers import openai_completions as oc
from gateway_core.providers.errors import ProviderError
from gateway_core.providers.types import StreamEnd, TextDelta
from gateway_trio.providers._http import SSEEvents


class Body:
    """A response whose body arrives in the given chunks; ``reads`` counts the receives."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = deque(chunks)
        self.reads = 0

    async def receive(self) -> bytes:
        self.reads += 1
        await trio.lowlevel.checkpoint()
        return self.chunks.popleft() if self.chunks else b""


class Buffered(Body):
    """As :class:`Body`, and what has arrived can be taken without waiting (``receive_nowait``):
    the chunks listed in ``here`` (by index) are already in the socket buffer."""

    def __init__(self, chunks: list[bytes], here: int) -> None:
        super().__init__(chunks)
        self.here = here  # how many of the remaining chunks are already here

    async def receive(self) -> bytes:
        self.here = max(0, self.here - 1)
        return await super().receive()

    def receive_nowait(self) -> bytes | None:
        if not self.chunks:
            return b""
        if self.here <= 0:
            return None
        self.here -= 1
        return self.chunks.popleft()


def _chunk(content: str, finish: str | None = None) -> bytes:
    import json

    choice: dict[str, Any] = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return f"data: {json.dumps({'id': 'c1', 'choices': [choice]})}\n\n".encode()


def _events(body: Body) -> SSEEvents:
    parser = oc.ChatStreamParser()
    return SSEEvents(body, parse=parser.parse_chunk, finish=parser.finish, is_last=lambda _obj: False,  # type: ignore[arg-type]
                     idle_s=5.0, url="http://127.0.0.1:1/v1/chat/completions", label=lambda err: err)


def test_a_whole_answer_in_one_chunk_is_in_hand_after_the_first_read() -> None:
    async def main() -> None:
        body = Body([_chunk("a") + _chunk("b") + _chunk("c", "stop") + b"data: [DONE]\n\n"])
        events = _events(body)
        first = await events.__anext__()
        more = events.ready(64)
        texts = [e.text for e in (first, *more) if isinstance(e, TextDelta)]
        assert texts == ["a", "b", "c"] and body.reads == 1 and not events.exhausted
        rest = [e async for e in events]  # the end: [DONE], the tail drained, the closing events
        assert any(isinstance(e, StreamEnd) for e in rest) and not any(isinstance(e, TextDelta) for e in rest)
        assert events.exhausted and events.ready(64) == []

    trio.run(main)


def test_ready_takes_no_more_than_asked_and_keeps_the_order() -> None:
    async def main() -> None:
        body = Body([b"".join(_chunk(str(i)) for i in range(10))])
        events = _events(body)
        seen = [(await events.__anext__()).text]  # type: ignore[attr-defined]
        while got := events.ready(3):
            assert len(got) <= 3
            seen += [e.text for e in got if isinstance(e, TextDelta)]
        assert seen == [str(i) for i in range(10)]

    trio.run(main)


def test_a_failure_met_in_hand_comes_after_the_events_before_it() -> None:
    async def main() -> None:
        body = Body([_chunk("a") + _chunk("b") + b"data: {not json\n\n" + _chunk("c")])
        events = _events(body)
        first = await events.__anext__()
        more = events.ready(64)
        assert [e.text for e in (first, *more) if isinstance(e, TextDelta)] == ["a", "b"]
        with pytest.raises(ProviderError):
            await events.__anext__()

    trio.run(main)


def test_the_end_is_in_hand_too_when_the_tail_is_here_already() -> None:
    """``[DONE]`` and the body's end arrived with the text: the closing events are in hand and
    the stream says it is exhausted (one ModelNext answer for the whole call, no pump, no drain)."""

    async def main() -> None:
        body = Buffered([_chunk("a") + _chunk("b", "stop") + b"data: [DONE]\n\n", b"\r\n"], here=2)
        events = _events(body)
        first = await events.__anext__()
        more = events.ready(64)
        assert [e.text for e in (first, *more) if isinstance(e, TextDelta)] == ["a", "b"]
        assert any(isinstance(e, StreamEnd) for e in more) and events.exhausted and body.reads == 1

    trio.run(main)


def test_the_end_waits_for_the_read_path_when_the_tail_is_not_here() -> None:
    async def main() -> None:
        body = Buffered([_chunk("a", "stop") + b"data: [DONE]\n\n", b"\r\n"], here=0)
        events = _events(body)
        await events.__anext__()
        assert not [e for e in events.ready(64) if isinstance(e, StreamEnd)] and not events.exhausted
        rest = [e async for e in events]  # the read path drains the tail, then ends
        assert any(isinstance(e, StreamEnd) for e in rest) and events.exhausted

    trio.run(main)


def test_a_stream_cut_short_in_hand_fails_at_the_next_read_after_its_text() -> None:
    """``[DONE]`` with no finish_reason before it, the tail here: the text comes, then the
    cut-short failure (never lost, never raised by ``ready``)."""

    async def main() -> None:
        body = Buffered([_chunk("a") + _chunk("b") + b"data: [DONE]\n\n", b"\r\n"], here=2)
        events = _events(body)
        first = await events.__anext__()
        more = events.ready(64)
        assert [e.text for e in (first, *more) if isinstance(e, TextDelta)] == ["a", "b"] and not events.exhausted
        with pytest.raises(ProviderError, match="finish_reason"):
            await events.__anext__()

    trio.run(main)
