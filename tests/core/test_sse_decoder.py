"""The pure SSE decoder: line ends, fields, comments, BOM, ids, limits, and every way a stream can
be cut into chunks (each split point of a sample, byte by byte, random splits by hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_core.providers.sse import SSEDecoder, SSEError, SSEEvent


def decode(*chunks: bytes, max_line: int = 1 << 20) -> list[SSEEvent]:
    decoder = SSEDecoder(max_line)
    out = [e for c in chunks for e in decoder.feed(c)]
    decoder.end()
    return out


# An OpenAI-like stream and an Anthropic-like one, with every feature the decoder must handle.
SAMPLE = (
    b"\xef\xbb\xbf: a comment first\r\n"
    b"retry: 1500\n"
    b"data: {\"choices\":[{\"delta\":{\"content\":\"h\xc3\xa9\"}}]}\n\n"
    b"event: content_block_delta\r"
    b"id: 7\r"
    b"data: line one\r"
    b"data:line two\r\r"
    b": keep-alive\r\n\r\n"
    b"event: ping\r\n"
    b"data\r\n\r\n"
    b"id\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"choices":[{"delta":{"content":"hé"}}]}', "message", None, 1500),
    SSEEvent("line one\nline two", "content_block_delta", "7", 1500),
    SSEEvent("", "ping", "7", 1500),
    SSEEvent("[DONE]", "message", "", 1500),
]


def test_the_sample_in_one_piece() -> None:
    assert decode(SAMPLE) == EXPECTED


@pytest.mark.parametrize("at", range(len(SAMPLE) + 1))
def test_every_split_point_of_the_sample(at: int) -> None:
    assert decode(SAMPLE[:at], SAMPLE[at:]) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode(*(SAMPLE[i:i + 1] for i in range(len(SAMPLE)))) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=12))
def test_any_cuts(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(SAMPLE)]
    assert decode(*(SAMPLE[a:b] for a, b in zip(points, points[1:], strict=False))) == EXPECTED


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\n\n", [SSEEvent("a")]),
        (b"data: a\r\n\r\n", [SSEEvent("a")]),
        (b"data: a\r\r", [SSEEvent("a")]),
        (b"data:a\n\n", [SSEEvent("a")]),  # no space after the colon
        (b"data:  a\n\n", [SSEEvent(" a")]),  # only one space is removed
        (b"data: a\ndata: b\ndata\n\n", [SSEEvent("a\nb\n")]),
        (b"data:\n\n", [SSEEvent("")]),  # an empty data line is an (empty) event
        (b"event: x\n\n", []),  # no data: nothing dispatched, the type forgotten
        (b"event: x\n\ndata: y\n\n", [SSEEvent("y")]),
        (b": only a comment\n\n", []),
        (b"unknown: field\ndata: z\n\n", [SSEEvent("z")]),
        (b"id: a\0b\ndata: z\n\n", [SSEEvent("z")]),  # an id with NUL is ignored
        (b"retry: 12x\ndata: z\n\n", [SSEEvent("z")]),  # not digits: ignored
        (b"data: unfinished", []),  # the stream ended inside an event: dropped
        (b"data: unfinished\n", []),
        (b"\xef\xbb\xbfdata: bom\n\n", [SSEEvent("bom")]),
        (b"data: \xef\xbb\xbf kept\n\n", [SSEEvent("\ufeff kept")]),  # a BOM later is data
        (b"data: \xff\n\n", [SSEEvent("\ufffd")]),  # invalid UTF-8 is replaced, as the standard says
        (b"\n\n\ndata: a\n\n\n\n", [SSEEvent("a")]),
    ],
)
def test_rules(stream: bytes, expected: list[SSEEvent]) -> None:
    assert decode(stream) == expected
    assert decode(*(stream[i:i + 1] for i in range(len(stream)))) == expected


def test_a_split_crlf_counts_once() -> None:
    # "\r" ends the line; the "\n" that opens the next chunk is its pair, not an empty line.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SSEEvent("a\nb")]
    assert decode(b"data: a\r", b"\r") == [SSEEvent("a")]


def test_the_last_event_id_persists() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n") == [
        SSEEvent("a", id="1"), SSEEvent("b", id="1"), SSEEvent("c", id="")]
    assert decoder.last_id == ""


def test_a_line_over_the_limit_is_an_error_whole_or_in_pieces() -> None:
    with pytest.raises(SSEError):
        decode(b"data: " + b"x" * 100 + b"\n\n", max_line=64)
    decoder = SSEDecoder(64)
    decoder.feed(b"data: " + b"x" * 50)
    with pytest.raises(SSEError):
        decoder.feed(b"x" * 20)  # no line end yet: the partial line itself is bounded
    with pytest.raises(SSEError):
        decode(b"data: " + b"x" * 40 + b"\r", b"\n\n", max_line=32)


def test_many_data_lines_are_bounded_as_one_event() -> None:
    with pytest.raises(SSEError):
        decode(b"data: 0123456789\n" * 10 + b"\n", max_line=64)
    assert decode(b"data: 0123456789\n" * 3 + b"\n", max_line=64) == [SSEEvent("0123456789\n" * 2 + "0123456789")]


def test_a_long_line_in_many_pieces_is_kept_whole() -> None:
    big = b"y" * 300_000
    pieces = [b"data: "] + [big[i:i + 4096] for i in range(0, len(big), 4096)] + [b"\n\n"]
    assert decode(*pieces) == [SSEEvent(big.decode())]
