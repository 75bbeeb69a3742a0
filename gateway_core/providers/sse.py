"""Server-sent events, sans-IO: bytes in, events out (the WHATWG ``text/event-stream`` rules).

``SSEDecoder.feed(chunk)`` takes the body as it arrives, in pieces of any size, and returns the
events its complete lines finish; ``end()`` says the body is over (an event without its closing
blank line is dropped, as the standard says). Lines end in ``\\n``, ``\\r\\n`` or ``\\r`` (a
``\\r\\n`` split across two chunks counts once); a UTF-8 BOM at the very start is skipped; ``:``
lines are comments; ``data`` lines of one event join with ``\\n``; ``id`` persists across events
(the last event id) unless it holds a NUL; ``retry`` is kept when all digits. A line, or an event's
data, longer than ``max_line`` bytes is a :class:`SSEError` rather than unbounded memory.

    decoder = SSEDecoder()
    for event in decoder.feed(b'event: ping\\ndata: {"a":1}\\n\\n'):
        event.event, event.data          # ("ping", '{"a":1}')
"""

from __future__ import annotations

from typing import Final, NamedTuple

#: The longest line (or one event's data) accepted, in bytes.
MAX_LINE: Final = 4 * 1024 * 1024
_BOM: Final = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The event stream cannot be read (a line past the limit)."""


class SSEEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """The incremental decoder for one stream (one object per response)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        #: The last event id seen (persists across events, WHATWG "last event ID buffer").
        self.last_id: str | None = None
        #: The last valid ``retry`` value, in milliseconds.
        self.retry: int | None = None
        self._partial: list[bytes] = []  # the unfinished last line, in the pieces it came in
        self._partial_size = 0
        self._started = False  # past the (optional) BOM
        self._skip_lf = False  # the previous chunk ended in \r: a \n first in the next is its pair
        self._data: list[str] = []
        self._size = 0
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk``."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if not self._started:
            buf = b"".join(self._partial) + chunk
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._partial, self._partial_size = [buf], len(buf)
                return []
            self._started = True
            chunk = buf[len(_BOM):] if buf.startswith(_BOM) else buf
            self._partial, self._partial_size = [], 0
        if b"\n" not in chunk and b"\r" not in chunk:  # the middle of a (long) line: no rescans
            self._keep(chunk)
            return []
        if self._partial:
            chunk = b"".join(self._partial) + chunk
            self._partial, self._partial_size = [], 0
        if b"\r" in chunk:
            lines = chunk.splitlines()  # bytes.splitlines: exactly \n, \r\n and \r
            self._skip_lf = chunk.endswith(b"\r")
            if not chunk.endswith((b"\n", b"\r")):
                self._keep(lines.pop())
        else:
            lines = chunk.split(b"\n")
            rest = lines.pop()  # after the last \n: empty, or the start of the next line
            if rest:
                self._keep(rest)
        out: list[SSEEvent] = []
        for line in lines:  # the common lines inline ("data: …" and the blank end): this is the hot path
            if not line:
                if self._data:
                    data = self._data
                    text = data[0] if len(data) == 1 else "\n".join(data)
                    out.append(SSEEvent(text, self._event or "message", self.last_id, self.retry))
                    self._data, self._size = [], 0
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                self._size += len(value) + 1
                if self._size > self.max_line:
                    raise SSEError(f"event stream event longer than {self.max_line} bytes")
                self._data.append(value.decode("utf-8", "replace"))
            else:
                self._field(line)
        return out

    def end(self) -> None:
        """The body is over: an event without its closing blank line is dropped (WHATWG)."""
        self._partial, self._partial_size = [], 0
        self._data, self._size, self._event = [], 0, ""

    def _keep(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size > self.max_line:
            raise SSEError(f"event stream line longer than {self.max_line} bytes")

    def _field(self, line: bytes) -> None:
        """A line other than ``data:`` and the blank one: a comment, ``event``, ``id``, ``retry``, ``data``
        without a colon, or a field to ignore."""
        if len(line) > self.max_line:
            raise SSEError(f"event stream line longer than {self.max_line} bytes")
        if line[:1] == b":":
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # "data" alone: an empty data line
            self._size += len(value) + 1
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self.retry = int(value)


__all__ = ["MAX_LINE", "SSEDecoder", "SSEError", "SSEEvent"]
