"""A scripted OpenAI- and Anthropic-compatible model server for the test suite, over real TCP.

It listens on a kernel-chosen ``127.0.0.1`` port in a background thread (stdlib ``http.server``,
one thread per connection, HTTP/1.1 keep-alive), so in-process adapters and gateway subprocesses
reach it alike. Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (SSE with chunked
encoding, or JSON), ``POST /v1/embeddings``, ``POST /v1/messages`` (Anthropic).

Each chat or messages request takes the next scripted behaviour (:meth:`ScriptedUpstream.script_for`
by a marker in its text, then :meth:`ScriptedUpstream.script` in order) or, when none is queued,
the default of the recordings' upstream (http-openai-observed.md §0.2): ``upstream-reply-<n>:
<last line of the last real user message>`` in 4 deltas, with markers in the user text:
``ERR500``, ``ERR429`` (``Retry-After: 1``), ``ERR401``, ``ERR400``, ``HANG`` (first time a text
is seen), ``HANGALL``, ``LONGSTREAM``, ``TOOLCALL:<name>``, ``DROP``. Behaviours: :class:`Text`,
:class:`ToolCalls`, :class:`Error`, :class:`Hang`, :class:`Drop`, and :class:`Gate` (hold the
answer until the test opens it: ordering by events, not by timing).

Every request is recorded (credential values redacted as ``Bearer <redacted len=N>``) with its
outcome, including whether the client disconnected and when. Everything is bounded: hangs end
when the client goes away, when the server stops, or after ``Hang.seconds``.

Run standalone for interop runs against the published gateway:
``python tests/upstream.py --port P [--log upstream.jsonl] [--delay 0.05]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 32 * 1024 * 1024
INTERNAL_CONTEXT = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"
_STAMP = re.compile(r"^\[[A-Z][a-z]{2} \d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})? [A-Z]{2,5}\] ")
_TOOLCALL = re.compile(r"TOOLCALL:([A-Za-z0-9_.-]+)")


# --------------------------------------------------------------------------- behaviours


@dataclass
class Text:
    """A normal answer: ``text`` (``None``: the default reply) in ``deltas`` pieces, ``delay_s`` apart.

    ``stall_after``: after that many deltas, hang (a mid-stream stall). ``usage``: sent when the
    client asked for it (``None``: counted from the words), or ``{}`` to send none. ``sndbuf``:
    the socket's send buffer in bytes (``SO_SNDBUF``), so that a client that stops reading blocks
    the writes soon (the kernel would otherwise absorb megabytes); progress: :meth:`ScriptedUpstream.progress`.
    """

    text: str | None = None
    deltas: int = 4
    delay_s: float = 0.0
    finish: str = "stop"
    usage: dict[str, Any] | None = None
    reasoning: str | None = None
    stall_after: int | None = None
    stall_s: float = 30.0
    sndbuf: int | None = None


@dataclass
class ToolCalls:
    """Tool calls, each ``(name, arguments JSON text)``, streamed as ``fragments`` argument pieces."""

    calls: list[tuple[str, str]]
    fragments: int = 3
    text: str | None = None
    delay_s: float = 0.0


@dataclass
class Error:
    """An error answer. ``body`` (bytes) replaces the JSON error body when given."""

    status: int
    message: str = "scripted error"
    type: str | None = None
    code: str | None = None
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Hang:
    """Accept the request and send nothing, until the client leaves, the server stops, or ``seconds``."""

    seconds: float = 30.0


@dataclass
class Drop:
    """Start a normal stream, then drop the connection after ``after_deltas`` deltas (no terminator)."""

    after_deltas: int = 2
    text: str = "this answer is cut off before the end"


@dataclass
class Gate:
    """Hold the answer (nothing sent, not even the head) until :meth:`open` is called, then answer as
    ``then`` (``None``: the default reply). Lets a test order events without timing: what the
    gateway sends while the gate is shut, it sent before the upstream answered. Bounded: ends
    when the client leaves, when the server stops, or after ``seconds`` (recorded as ``gate_timeout``)."""

    then: Text | ToolCalls | Error | Hang | Drop | None = None
    seconds: float = 30.0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def open(self) -> None:
        self.released.set()


Behaviour = Text | ToolCalls | Error | Hang | Drop | Gate


# --------------------------------------------------------------------------- records


@dataclass
class Recorded:
    """One request as it arrived: ``headers`` lower-cased with credentials redacted."""

    n: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    t: float
    credential: str = "none"  # "ok" | "wrong" | "none"
    peer: str = ""  # the client's address:port (one per connection: shows keep-alive reuse)

    @property
    def api(self) -> str:
        return "anthropic" if self.path.endswith("/messages") else "openai"


@dataclass
class Outcome:
    """What the upstream did with request ``n``."""

    n: int
    status: int
    mode: str
    chunks_sent: int = 0
    client_disconnected: bool = False
    elapsed_s: float = 0.0
    text: str = ""
    t: float = 0.0


def _redact(name: str, value: str) -> str:
    if name == "authorization":
        scheme, _, secret = value.partition(" ")
        return f"{scheme} <redacted len={len(secret)}>" if secret else "<redacted>"
    if name in ("x-api-key", "api-key"):
        return f"<redacted len={len(value)}>"
    return value


def _words(text: str) -> int:
    return len(text.split())


def _split(text: str, pieces: int) -> list[str]:
    """``text`` in ``pieces`` roughly equal parts (fewer when it is shorter)."""
    pieces = max(1, min(pieces, len(text) or 1))
    size, extra = divmod(len(text), pieces)
    out, at = [], 0
    for i in range(pieces):
        step = size + (1 if i < extra else 0)
        out.append(text[at : at + step])
        at += step
    return [p for p in out if p] or [""]


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")
        )
    return ""


def _is_tool_result_only(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        isinstance(p, dict) and p.get("type") == "tool_result" for p in content
    )


def last_user_text(body: dict[str, Any]) -> str:
    """The last real user message's text (the internal-context block and tool results skipped)."""
    for msg in reversed(body.get("messages") or []):
        if not isinstance(msg, dict) or msg.get("role") != "user" or _is_tool_result_only(msg.get("content")):
            continue
        text = _message_text(msg.get("content"))
        if text.startswith(INTERNAL_CONTEXT):
            continue
        return text
    return ""


def reply_line(text: str) -> str:
    """What the default reply quotes: the last line, without the Runtime paragraph and time stamp."""
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.startswith("Runtime: ")]
    line = lines[-1] if lines else ""
    return _STAMP.sub("", line)


def _has_tool_result(body: dict[str, Any]) -> bool:
    for msg in body.get("messages") or []:
        if isinstance(msg, dict) and (msg.get("role") == "tool" or _is_tool_result_only(msg.get("content"))):
            return True
    return False


def unanswered_tool_calls(body: dict[str, Any]) -> list[str]:
    """Ids of assistant ``tool_calls`` not answered by the ``tool`` messages right after them."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    out: list[str] = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant" or not msg.get("tool_calls"):
            continue
        answered = set()
        for later in messages[i + 1:]:
            if later.get("role") != "tool":
                break
            answered.add(later.get("tool_call_id"))
        out += [c.get("id") for c in msg["tool_calls"] if isinstance(c, dict) and c.get("id") not in answered]
    return out


def _tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            names.append((tool.get("function") or {}).get("name") or tool.get("name") or "")
    return names


# --------------------------------------------------------------------------- the server


class ScriptedUpstream:
    """The server. Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>/v1``.

    ``api_key``: when set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``),
    else they get a 401 without consuming a scripted behaviour. ``delta_delay_s`` is the default
    pause between deltas; ``longstream`` the ``(chunks, delay)`` of ``LONGSTREAM``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("scripted", "scripted-b"),
        delta_delay_s: float = 0.0,
        longstream: tuple[int, float] = (40, 0.5),
        log_path: str | None = None,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self._port_arg = port
        self.models = models
        self.delta_delay_s = delta_delay_s
        self.longstream = longstream
        self.requests: list[Recorded] = []
        self.outcomes: list[Outcome] = []
        self.behaviour: Callable[[Recorded], Behaviour | None] | None = None
        self._queue: list[Behaviour] = []
        self._marked: list[tuple[str, Behaviour]] = []
        self._seen_hang: set[str] = set()
        #: Refuse (400, OpenAI's wording) a request whose assistant ``tool_calls`` are not each
        #: answered by a ``tool`` message, as the real API and strict servers do.
        self.strict_tool_history = False
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._n = 0
        self._progress: dict[int, tuple[int, int]] = {}
        self._t0 = time.monotonic()
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115 - closed in stop()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> ScriptedUpstream:
        handler = type("Handler", (_Handler,), {"upstream": self})
        server = ThreadingHTTPServer(("127.0.0.1", self._port_arg), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, release hangs, close every connection; bounded (a few seconds at most)."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._cond:
            sockets = list(self._sockets)
            self._cond.notify_all()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    # ---- scripting and assertions

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat/messages requests, in order."""
        with self._cond:
            self._queue.extend(behaviours)

    def script_for(self, marker: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next chat/messages requests whose last user text contains
        ``marker`` (taken before :meth:`script`'s queue; other requests are not affected)."""
        with self._cond:
            self._marked.extend((marker, b) for b in behaviours)

    def chat_requests(self) -> list[Recorded]:
        """The chat/messages requests so far."""
        with self._cond:
            return [r for r in self.requests if r.path.endswith(("/chat/completions", "/messages"))]

    def outcome(self, n: int) -> Outcome | None:
        with self._cond:
            return next((o for o in self.outcomes if o.n == n), None)

    def progress(self, n: int) -> tuple[int, int]:
        """``(deltas, bytes)`` request ``n``'s stream has written so far (the kernel took them)."""
        with self._cond:
            return self._progress.get(n, (0, 0))

    def wait_for(self, predicate: Callable[[ScriptedUpstream], bool], timeout: float = 10.0) -> bool:
        """Wait (bounded) until ``predicate(self)`` holds; re-checked on every record."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    # ---- internals used by the handler

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def _record(self, rec: Recorded | Outcome) -> None:
        with self._cond:
            (self.requests if isinstance(rec, Recorded) else self.outcomes).append(rec)
            self._cond.notify_all()
        if self._log is not None:
            kind = "request" if isinstance(rec, Recorded) else "response"
            self._log.write(json.dumps({"kind": kind, **asdict(rec)}) + "\n")
            self._log.flush()

    def _next_n(self) -> int:
        with self._cond:
            self._n += 1
            return self._n

    def _choose(self, rec: Recorded) -> Behaviour:
        with self._cond:
            if self._marked:
                text = last_user_text(rec.body if isinstance(rec.body, dict) else {})
                for i, (marker, behaviour) in enumerate(self._marked):
                    if marker in text:
                        del self._marked[i]
                        return behaviour
            if self._queue:
                return self._queue.pop(0)
        if self.behaviour is not None:
            chosen = self.behaviour(rec)
            if chosen is not None:
                return chosen
        return self._default(rec)

    def _default(self, rec: Recorded) -> Behaviour:
        body = rec.body if isinstance(rec.body, dict) else {}
        text = last_user_text(body)
        if "ERR500" in text:
            return Error(500, "scripted upstream failure", "server_error")
        if "ERR429" in text:
            return Error(429, "scripted rate limit: slow down; Retry-After: 1 seconds", "rate_limit_error",
                         "rate_limit_exceeded", retry_after="1")
        if "ERR401" in text:
            return Error(401, "scripted invalid api key", "authentication_error", "invalid_api_key")
        if "ERR400" in text:
            return Error(400, "scripted bad request: unsupported parameter", "invalid_request_error", "bad_param")
        if "HANGALL" in text:
            return Hang()
        if "HANG" in text:
            with self._cond:
                first = text not in self._seen_hang
                self._seen_hang.add(text)
            if first:
                return Hang()
        if "DROP" in text:
            return Drop()
        if "LONGSTREAM" in text:
            chunks, delay = self.longstream
            return Text("".join(f"tick{i} " for i in range(chunks)), deltas=chunks, delay_s=delay)
        tool = _TOOLCALL.search(text)
        if tool and not _has_tool_result(body):
            name = tool.group(1)
            offered = _tool_names(body)
            if name not in offered and "tool_call" in offered:
                return ToolCalls([("tool_call", json.dumps({"id": name, "args": {"city": "Paris"}}, separators=(",", ":")))])
            return ToolCalls([(name, json.dumps({"city": "Paris"}, separators=(",", ":")))])
        prefix = "tool result seen: " if _has_tool_result(body) else ""
        return Text(f"upstream-reply-{rec.n}: {prefix}{reply_line(text)}", delay_s=self.delta_delay_s)

    def _credential(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-api-key")
        if not given:
            return "none"
        return "ok" if self.api_key is None or given == self.api_key else "wrong"


# --------------------------------------------------------------------------- wire rendering


def _usage_numbers(body: dict[str, Any], text: str, override: dict[str, Any] | None) -> tuple[int, int]:
    if override:
        return int(override.get("prompt_tokens", override.get("input_tokens", 0))), int(
            override.get("completion_tokens", override.get("output_tokens", 0)))
    prompt = sum(_words(_message_text(m.get("content"))) for m in body.get("messages") or [] if isinstance(m, dict))
    system = body.get("system")
    if isinstance(system, str):
        prompt += _words(system)
    return prompt, max(1, _words(text))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: ScriptedUpstream
    server_version = "scripted-upstream/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must not wait for the client's delayed ACK (Nagle: ~40 ms per event).
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.upstream._cond:
            self.upstream._sockets.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.upstream._cond:
            self.upstream._sockets.discard(self.connection)

    # ---- plumbing

    def _disconnected(self, wait_s: float) -> bool:
        """Wait up to ``wait_s``; ``True`` as soon as the client has closed its side."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            if self.upstream._closing.is_set():
                return True
            left = deadline - time.monotonic()
            try:
                readable, _, _ = select.select([self.connection], [], [], max(0.0, min(left, 0.05)))
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except (OSError, ValueError):
                return True
            if left <= 0:
                return False

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._send_json(413, {"error": {"message": "body too large", "type": "invalid_request_error"}})
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _begin(self) -> tuple[Recorded, Any] | None:
        up = self.upstream
        raw = self._read_body() if self.command == "POST" else b""
        if raw is None:
            return None
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = {"_invalid_json": raw[:200].decode("utf-8", "replace")}
        rec = Recorded(
            n=up._next_n(), method=self.command, path=self.path,
            headers={k: _redact(k, v) for k, v in headers.items()}, body=body, t=up._now(),
            credential=up._credential(headers), peer=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        up._record(rec)
        return rec, body

    def _done(self, rec: Recorded, status: int, mode: str, start: float, **kw: Any) -> None:
        self.upstream._record(Outcome(n=rec.n, status=status, mode=mode, elapsed_s=round(time.monotonic() - start, 3),
                                      t=self.upstream._now(), **kw))

    # ---- routes

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        begun = self._begin()
        if begun is None:
            return
        rec, _ = begun
        start = time.monotonic()
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.upstream.models]
            self._send_json(200, {"object": "list", "data": data})
            self._done(rec, 200, "models", start)
            return
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        self._done(rec, 404, "not_found", start)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        begun = self._begin()
        if begun is None:
            return
        rec, body = begun
        start = time.monotonic()
        path = self.path.split("?", 1)[0].rstrip("/")
        anthropic = path == "/v1/messages"
        if path not in ("/v1/chat/completions", "/v1/embeddings", "/v1/messages"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            self._done(rec, 404, "not_found", start)
            return
        if self.upstream.api_key is not None and rec.credential != "ok":
            self._error(Error(401, "scripted: missing or wrong api key", "authentication_error", "invalid_api_key"),
                        anthropic)
            self._done(rec, 401, "auth_rejected", start)
            return
        if not isinstance(body, dict):
            self._error(Error(400, "scripted: body must be a JSON object", "invalid_request_error"), anthropic)
            self._done(rec, 400, "bad_json", start)
            return
        if path == "/v1/embeddings":
            self._embeddings(rec, body, start)
            return
        dangling = unanswered_tool_calls(body) if self.upstream.strict_tool_history and not anthropic else []
        if dangling:
            self._error(Error(400, "An assistant message with 'tool_calls' must be followed by tool messages responding "
                              "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                              + ", ".join(dangling), "invalid_request_error", None), anthropic)
            self._done(rec, 400, "invalid_tool_history", start)
            return
        behaviour = self.upstream._choose(rec)
        self._sent = 0
        try:
            self._serve(rec, body, behaviour, anthropic, start)
        except OSError:  # the client went away mid-answer (broken pipe, reset)
            self.close_connection = True
            self._done(rec, 200, type(behaviour).__name__.lower(), start, chunks_sent=self._sent,
                       client_disconnected=True)

    def _error(self, err: Error, anthropic: bool) -> None:
        extra = {"retry-after": err.retry_after} if err.retry_after is not None else {}
        if err.body is not None:
            self.send_response(err.status)
            self.send_header("content-type", err.content_type)
            self.send_header("content-length", str(len(err.body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(err.body)
            self.wfile.flush()
            return
        if anthropic:
            obj: dict[str, Any] = {"type": "error", "error": {"type": err.type or "api_error", "message": err.message}}
        else:
            obj = {"error": {"message": err.message, "type": err.type, "code": err.code}}
        self._send_json(err.status, obj, extra)

    def _serve(self, rec: Recorded, body: dict[str, Any], b: Behaviour, anthropic: bool, start: float) -> None:
        stream = bool(body.get("stream"))
        if isinstance(b, Gate):
            b.arrived.set()
            deadline = time.monotonic() + b.seconds
            while not b.released.wait(0.02):
                if time.monotonic() > deadline or self._disconnected(0.0):
                    gone = time.monotonic() <= deadline and not self.upstream._closing.is_set()
                    self.close_connection = True
                    self._done(rec, 0, "gate" if gone else "gate_timeout", start, client_disconnected=gone)
                    return
            b = b.then if b.then is not None else self.upstream._default(rec)
        if isinstance(b, Error):
            self._error(b, anthropic)
            self._done(rec, b.status, f"error{b.status}", start)
            return
        if isinstance(b, Hang):
            gone = self._disconnected(b.seconds)
            self.close_connection = True
            self._done(rec, 0, "hang", start, client_disconnected=gone and not self.upstream._closing.is_set())
            return
        if isinstance(b, Drop):
            pieces = _split(b.text, max(b.after_deltas + 2, 4))
            text = b.text
        elif isinstance(b, ToolCalls):
            text = b.text or ""
            pieces = _split(text, 2) if text else []
        else:
            text = b.text or ""
            pieces = _split(text, b.deltas) if text else []
        if not stream and not isinstance(b, Drop):
            self._send_json(200, self._whole(rec, body, b, text, anthropic))
            self._done(rec, 200, "json", start, text=text)
            return
        render = _AnthropicSSE(rec, body, self.upstream.models) if anthropic else _OpenAISSE(rec, body)
        if isinstance(b, Text) and b.sndbuf is not None:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, b.sndbuf)
        self._start_sse()
        sent = 0
        written = 0
        for frame in render.open():
            self._chunk(frame)
        delay = getattr(b, "delay_s", 0.0)
        for i, piece in enumerate(pieces):
            if i and delay and self._disconnected(delay):
                raise BrokenPipeError
            if isinstance(b, Drop) and i == b.after_deltas:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self._done(rec, 200, "drop", start, chunks_sent=sent, text=text)
                return
            if isinstance(b, Text) and b.stall_after is not None and i == b.stall_after:
                gone = self._disconnected(b.stall_s)
                self.close_connection = True
                self._done(rec, 200, "stall", start, chunks_sent=sent, client_disconnected=gone, text=text)
                return
            if i == 0 and isinstance(b, Text) and b.reasoning:
                self._chunk(render.reasoning(b.reasoning))
            frame = render.text(piece)
            self._chunk(frame)
            sent += 1
            written += len(frame)
            self._sent = sent
            with self.upstream._cond:
                self.upstream._progress[rec.n] = (sent, written)
        if isinstance(b, ToolCalls):
            for index, (name, args) in enumerate(b.calls):
                for frame in render.tool(index, name, args, b.fragments):
                    if b.delay_s and self._disconnected(b.delay_s):
                        raise BrokenPipeError
                    self._chunk(frame)
                    sent += 1
                    self._sent = sent
        finish = "tool_calls" if isinstance(b, ToolCalls) else b.finish
        usage = _usage_numbers(body, text, b.usage if isinstance(b, Text) else None)
        send_usage = not (isinstance(b, Text) and b.usage == {})
        for frame in render.close(finish, usage, send_usage):
            self._chunk(frame)
        self._end_chunks()
        self._done(rec, 200, "toolcall" if isinstance(b, ToolCalls) else "normal", start, chunks_sent=sent, text=text)

    def _whole(self, rec: Recorded, body: dict[str, Any], b: Behaviour, text: str, anthropic: bool) -> dict[str, Any]:
        prompt, completion = _usage_numbers(body, text, b.usage if isinstance(b, Text) else None)
        calls = b.calls if isinstance(b, ToolCalls) else []
        model = body.get("model", "scripted")
        if anthropic:
            content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            content += [{"type": "tool_use", "id": f"toolu_up{rec.n}_{i}", "name": name, "input": json.loads(args)}
                        for i, (name, args) in enumerate(calls)]
            return {"id": f"msg_up{rec.n}", "type": "message", "role": "assistant", "model": model,
                    "content": content, "stop_reason": "tool_use" if calls else "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": prompt, "output_tokens": completion}}
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [{"id": f"callup{rec.n}_{i}", "type": "function",
                                      "function": {"name": name, "arguments": args}} for i, (name, args) in enumerate(calls)]
        finish = "tool_calls" if calls else (b.finish if isinstance(b, Text) else "stop")
        return {"id": f"chatcmpl-up{rec.n}", "object": "chat.completion", "created": 1700000000, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}

    def _embeddings(self, rec: Recorded, body: dict[str, Any], start: float) -> None:
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            self._error(Error(400, "scripted: input must be a string or an array of strings", "invalid_request_error"),
                        False)
            self._done(rec, 400, "bad_input", start)
            return
        dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
        data = []
        for index, text in enumerate(items):
            vector = scripted_vector(text, dims)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_words(x) for x in items)
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model"),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        self._done(rec, 200, "embeddings", start)


def scripted_vector(text: str, dims: int = 8) -> list[float]:
    """The upstream's deterministic embedding: SHA-256 bytes scaled to ``[-1, 1]``, 6 decimals."""
    out: list[float] = []
    block = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        out.extend(round(b / 127.5 - 1.0, 6) for b in digest)
        block += 1
    return out[:dims]


class _OpenAISSE:
    """``chat.completion.chunk`` frames."""

    def __init__(self, rec: Recorded, body: dict[str, Any]) -> None:
        self.id = f"chatcmpl-up{rec.n}"
        self.model = body.get("model", "scripted")
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.n = rec.n

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        obj = {"id": self.id, "object": "chat.completion.chunk", "created": 1700000000, "model": self.model,
               "choices": choices, **extra}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._frame([{"index": 0, "delta": delta, "finish_reason": finish}])

    def open(self) -> Iterator[bytes]:
        yield self._delta({"role": "assistant", "content": ""})

    def text(self, piece: str) -> bytes:
        return self._delta({"content": piece})

    def reasoning(self, text: str) -> bytes:
        return self._delta({"reasoning_content": text})

    def tool(self, index: int, name: str, args: str, fragments: int) -> Iterator[bytes]:
        call_id = f"callup{self.n}" if index == 0 else f"callup{self.n}_{index}"
        yield self._delta({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]})
        for piece in _split(args, fragments):
            yield self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def close(self, finish: str, usage: tuple[int, int], send_usage: bool) -> Iterator[bytes]:
        yield self._delta({}, finish)
        if self.include_usage and send_usage:
            prompt, completion = usage
            yield self._frame([], usage={"prompt_tokens": prompt, "completion_tokens": completion,
                                         "total_tokens": prompt + completion})
        yield b"data: [DONE]\n\n"


class _AnthropicSSE:
    """Messages API stream events."""

    def __init__(self, rec: Recorded, body: dict[str, Any], models: tuple[str, ...]) -> None:
        self.rec = rec
        self.body = body
        self.block = 0
        self.text_open = False

    @staticmethod
    def _event(obj: dict[str, Any]) -> bytes:
        return f"event: {obj['type']}\n".encode() + b"data: " + json.dumps(obj).encode() + b"\n\n"

    def open(self) -> Iterator[bytes]:
        prompt, _ = _usage_numbers(self.body, "", None)
        yield self._event({"type": "message_start", "message": {
            "id": f"msg_up{self.rec.n}", "type": "message", "role": "assistant",
            "model": self.body.get("model", "scripted"), "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1}}})
        yield self._event({"type": "ping"})

    def _open_text(self) -> bytes:
        self.text_open = True
        return self._event({"type": "content_block_start", "index": self.block,
                            "content_block": {"type": "text", "text": ""}})

    def _close_text(self) -> bytes:
        self.text_open = False
        frame = self._event({"type": "content_block_stop", "index": self.block})
        self.block += 1
        return frame

    def text(self, piece: str) -> bytes:
        frame = b"" if self.text_open else self._open_text()
        return frame + self._event({"type": "content_block_delta", "index": self.block,
                                    "delta": {"type": "text_delta", "text": piece}})

    def reasoning(self, text: str) -> bytes:
        frames = self._event({"type": "content_block_start", "index": self.block,
                              "content_block": {"type": "thinking", "thinking": ""}})
        frames += self._event({"type": "content_block_delta", "index": self.block,
                               "delta": {"type": "thinking_delta", "thinking": text}})
        frames += self._event({"type": "content_block_stop", "index": self.block})
        self.block += 1
        return frames

    def tool(self, index: int, name: str, args: str, fragments: int) -> Iterator[bytes]:
        if self.text_open:
            yield self._close_text()
        yield self._event({"type": "content_block_start", "index": self.block, "content_block": {
            "type": "tool_use", "id": f"toolu_up{self.rec.n}_{index}", "name": name, "input": {}}})
        for piece in _split(args, fragments):
            yield self._event({"type": "content_block_delta", "index": self.block,
                               "delta": {"type": "input_json_delta", "partial_json": piece}})
        yield self._event({"type": "content_block_stop", "index": self.block})
        self.block += 1

    def close(self, finish: str, usage: tuple[int, int], send_usage: bool) -> Iterator[bytes]:
        if self.text_open:
            yield self._close_text()
        stop = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}.get(finish, finish)
        delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}
        if send_usage:
            delta["usage"] = {"output_tokens": usage[1]}
        yield self._event(delta)
        yield self._event({"type": "message_stop"})


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (for interop runs against the published gateway)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default=None, help="append requests and outcomes as JSONL")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between deltas (default 0.05)")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    up = ScriptedUpstream(api_key=args.api_key, delta_delay_s=args.delay, log_path=args.log, port=args.port)
    up.start()
    sys.stdout.write(f"{up.base_url}\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        up.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Behaviour", "Drop", "Error", "Gate", "Hang", "Outcome", "Recorded", "ScriptedUpstream", "Text", "ToolCalls",
           "last_user_text", "reply_line", "scripted_vector", "unanswered_tool_calls"]
