"""A Telegram-Bot-API-shaped HTTP server for the tests, over real TCP (``127.0.0.1``, kernel port).

It honours the Bot API contract a bot client relies on: ``POST``/``GET /bot<TOKEN>/<method>`` with a
JSON (or form) body, answers ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N,
"description": …, "parameters": {"retry_after": S}}``, a wrong token is ``401 Unauthorized``, an
unknown method ``404 Not Found``. ``getUpdates`` long-polls: updates below ``offset`` are confirmed
and forgotten, the rest are returned (at most ``limit``) or the call waits up to ``timeout`` seconds
for new ones; a second poll while one waits ends the first with ``409 Conflict`` (as Telegram does).

The test plays the human: :meth:`BotApi.dm` / :meth:`BotApi.group` queue updates, :meth:`BotApi.sent`
lists what the bot sent, :meth:`BotApi.fail` scripts failures of the next calls of a method (429
with ``retry_after``, 500, …) and :meth:`BotApi.down` / :meth:`BotApi.up` make the API unreachable
(connection refused) and back on the same port. Every call is recorded with its time. Everything is
bounded: long polls end at their timeout, when the server stops, or when it goes down.

Run standalone: ``python tests/botapi.py --port P --token T`` (prints each call as JSON).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_POLL_S = 50.0
BOT_ID = 7000001
BOT_USERNAME = "oc_test_bot"


@dataclass
class Call:
    """One request as it arrived (``t``: seconds since the server started)."""

    n: int
    t: float
    http: str
    method: str
    body: Any
    status: int = 0
    answer: Any = None


@dataclass
class Fault:
    """A scripted failure: ``status`` with ``description`` (and ``retry_after`` for 429); ``hang_s``
    holds the answer first (a slow API); ``after_delivery`` records the message as delivered
    before failing (an ambiguous failure: the bot cannot know whether it arrived)."""

    status: int
    description: str = "Internal Server Error"
    retry_after: int | None = None
    hang_s: float = 0.0
    after_delivery: bool = False


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    confirmed: int = 0
    next_update_id: int = 100_001
    next_message_id: int = 1
    poll_generation: dict[str, int] = field(default_factory=dict)


class BotApi:
    """The server. Use as a context manager; :attr:`api_root` is what ``apiRoot`` takes."""

    def __init__(
        self, token: str = "123456:TEST-token", *, port: int = 0, log: Callable[[Call], None] | None = None,
        extra_tokens: tuple[str, ...] = (),
    ) -> None:
        self.token = token
        #: More bots on the same server (each polls on its own; updates go to :attr:`token` only).
        self.extra_tokens = frozenset(extra_tokens)
        self.calls: list[Call] = []
        self.faults: dict[str, list[Fault]] = {}
        self.delivered: list[dict[str, Any]] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self._state = _State()
        self._cond = threading.Condition()
        self._stopping = False
        self._down = False
        self._t0 = time.monotonic()
        self._log = log
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Called for every sendMessage before it is answered (tests can hold or fail it).
        self.on_send: Callable[[dict[str, Any]], Fault | None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BotApi:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.api = self  # type: ignore[attr-defined]
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._close_listener()

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def down(self) -> None:
        """Stop listening (new connections are refused) and end the open long polls."""
        with self._cond:
            self._down = True
            self._cond.notify_all()
        self._close_listener()

    def up(self) -> None:
        """Listen again on the same port."""
        with self._cond:
            self._down = False
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> BotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ the human side

    def _message(self, chat: dict[str, Any], sender: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
        with self._cond:
            mid = self._state.next_message_id
            self._state.next_message_id += 1
        msg = {"message_id": mid, "from": sender, "chat": chat, "date": int(time.time()), "text": text}
        msg.update(extra)
        return msg

    def push(self, update_body: dict[str, Any]) -> int:
        """Queue one update (its ``update_id`` is assigned here); returns the update id."""
        with self._cond:
            uid = self._state.next_update_id
            self._state.next_update_id += 1
            self._state.updates.append({"update_id": uid, **update_body})
            self._cond.notify_all()
        return uid

    def dm(self, user_id: int, text: str, *, first_name: str = "Ada", username: str | None = "ada") -> int:
        """A direct message from user ``user_id``; returns the update id."""
        sender = {"id": user_id, "is_bot": False, "first_name": first_name, **({"username": username} if username else {})}
        chat = {"id": user_id, "type": "private", "first_name": first_name, **({"username": username} if username else {})}
        self.chats[user_id] = chat
        entities = _mention_entities(text)
        return self.push({"message": self._message(chat, sender, text, **({"entities": entities} if entities else {}))})

    def group(self, chat_id: int, user_id: int, text: str, *, title: str = "Test group", first_name: str = "Ada") -> int:
        """A message in group ``chat_id`` (negative id) from user ``user_id``; returns the update id."""
        sender = {"id": user_id, "is_bot": False, "first_name": first_name}
        chat = {"id": chat_id, "type": "supergroup" if chat_id < -1_000_000_000_000 else "group", "title": title}
        self.chats[chat_id] = chat
        entities = _mention_entities(text)
        return self.push({"message": self._message(chat, sender, text, **({"entities": entities} if entities else {}))})

    def fail(self, method: str, *faults: Fault) -> None:
        """The next calls of ``method`` get these faults, in order."""
        with self._cond:
            self.faults.setdefault(method, []).extend(faults)

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Bodies of the ``sendMessage`` calls that were delivered (optionally to one chat)."""
        with self._cond:
            return [b for b in self.delivered if chat_id is None or str(b.get("chat_id")) == str(chat_id)]

    def wait_for(self, predicate: Callable[[BotApi], bool], timeout: float = 20.0) -> bool:
        """Wait (bounded) until ``predicate(self)`` holds; re-checked after every call."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def pending_updates(self) -> int:
        """Updates the bot has not confirmed yet (by polling with a higher offset)."""
        with self._cond:
            return len(self._state.updates)

    @property
    def confirmed(self) -> int:
        """The highest offset the bot has polled with (it confirms every update below it)."""
        with self._cond:
            return self._state.confirmed

    # ------------------------------------------------------------------ the bot side

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def handle(self, http: str, method: str, token: str, body: Any) -> tuple[int, Any]:
        call = Call(n=len(self.calls) + 1, t=self._now(), http=http, method=method, body=body)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        status, answer = self._answer(method, token, body if isinstance(body, dict) else {})
        call.status, call.answer = status, answer
        with self._cond:
            self._cond.notify_all()
        if self._log is not None:
            self._log(call)
        return status, answer

    def _answer(self, method: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        if token != self.token and token not in self.extra_tokens:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if token != self.token and method == "getUpdates":
            return self._idle_poll(token, body)
        fault = None
        with self._cond:
            queue = self.faults.get(method)
            if queue:
                fault = queue.pop(0)
        if fault is None and method == "sendMessage" and self.on_send is not None:
            fault = self.on_send(body)
        if fault is not None:
            if fault.hang_s:
                self._sleep(fault.hang_s)
            if fault.after_delivery and method == "sendMessage":
                self._deliver(body)
            return fault.status, _error(fault)
        handler = getattr(self, f"_m_{method}", None)
        if method == "getUpdates":
            return self._m_getUpdates(body, token)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        return handler(body)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stopping and not self._down:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _ok(self, result: Any) -> tuple[int, Any]:
        return 200, {"ok": True, "result": result}

    def _m_getMe(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(
            {"id": BOT_ID, "is_bot": True, "first_name": "OC Test", "username": BOT_USERNAME, "can_join_groups": True,
             "can_read_all_group_messages": False, "supports_inline_queries": False, "has_topics_enabled": False}
        )

    def _m_deleteWebhook(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_getWebhookInfo(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok({"url": "", "has_custom_certificate": False, "pending_update_count": self.pending_updates()})

    def _m_setMyCommands(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_deleteMyCommands(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_getMyCommands(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok([])

    def _m_setChatMenuButton(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_sendChatAction(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_setMessageReaction(self, body: dict[str, Any]) -> tuple[int, Any]:
        return self._ok(True)

    def _m_getChat(self, body: dict[str, Any]) -> tuple[int, Any]:
        chat = self.chats.get(_int(body.get("chat_id")))
        if chat is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        return self._ok(chat)

    def _deliver(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = self.chats.get(_int(body.get("chat_id"))) or {"id": _int(body.get("chat_id")), "type": "private"}
        with self._cond:
            mid = self._state.next_message_id
            self._state.next_message_id += 1
            self.delivered.append(body)
            self._cond.notify_all()
        return {"message_id": mid, "from": {"id": BOT_ID, "is_bot": True, "first_name": "OC Test", "username": BOT_USERNAME},
                "chat": chat, "date": int(time.time()), "text": body.get("text", "")}

    def _m_sendMessage(self, body: dict[str, Any]) -> tuple[int, Any]:
        if not isinstance(body.get("text"), str) or not body["text"]:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(body["text"]) > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        return self._ok(self._deliver(body))

    def _idle_poll(self, token: str, body: dict[str, Any]) -> tuple[int, Any]:
        """An extra bot's poll: nobody writes to it, so it waits its timeout (409 if superseded)."""
        timeout = max(0.0, min(MAX_POLL_S, float(body.get("timeout") or 0)))
        deadline = time.monotonic() + timeout
        with self._cond:
            generation = self._state.poll_generation[token] = self._state.poll_generation.get(token, 0) + 1
            self._cond.notify_all()
            while not (self._stopping or self._down):
                if self._state.poll_generation[token] != generation:
                    return 409, {"ok": False, "error_code": 409, "description": "Conflict: terminated by other getUpdates request"}
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._ok([])
                self._cond.wait(min(left, 0.5))
        return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}

    def _m_getUpdates(self, body: dict[str, Any], token: str = "") -> tuple[int, Any]:
        offset = _int(body.get("offset")) or 0
        limit = max(1, min(100, _int(body.get("limit")) or 100))
        timeout = max(0.0, min(MAX_POLL_S, float(body.get("timeout") or 0)))
        deadline = time.monotonic() + timeout
        token = token or self.token
        with self._cond:
            generation = self._state.poll_generation[token] = self._state.poll_generation.get(token, 0) + 1
            self._cond.notify_all()
            if offset > 0:
                self._state.confirmed = max(self._state.confirmed, offset)
                self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
            while True:
                if self._stopping or self._down:
                    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
                if self._state.poll_generation[token] != generation:
                    return 409, {"ok": False, "error_code": 409,
                                 "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}
                ready = self._state.updates[:limit]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return self._ok(ready)
                self._cond.wait(min(left, 0.5))


def _error(fault: Fault) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error_code": fault.status, "description": fault.description}
    if fault.retry_after is not None:
        out["parameters"] = {"retry_after": fault.retry_after}
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _mention_entities(text: str) -> list[dict[str, Any]]:
    """``mention`` entities for ``@name`` words, as Telegram adds them."""
    out = []
    i = 0
    while True:
        i = text.find("@", i)
        if i < 0:
            return out
        j = i + 1
        while j < len(text) and (text[j].isalnum() or text[j] == "_"):
            j += 1
        if j - i > 1:
            out.append({"type": "mention", "offset": i, "length": j - i})
        i = j


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this the client's delayed ACK
        # (Nagle) adds ~40 ms to every answer, which is the test server's cost, not the bot's.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _route(self, http: str) -> None:
        api: BotApi = self.server.api  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(segments) != 2 or not segments[0].startswith("bot"):
            self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        token, method = segments[0][3:], segments[1]
        body: Any = dict(parse_qsl(parts.query))
        ctype = self.headers.get("Content-Type", "")
        if raw:
            if "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid JSON"})
                    return
            else:
                body = {k: _maybe_json(v) for k, v in parse_qsl(raw.decode())}
        status, answer = api.handle(http, method, token, body)
        self._send(status, answer)

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._route("POST")


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="123456:TEST-token")
    args = parser.parse_args()

    def show(call: Call) -> None:
        print(json.dumps({"t": call.t, "method": call.method, "body": call.body, "status": call.status}), flush=True)

    with BotApi(args.token, port=args.port, log=show) as api:
        print(f"listening on {api.api_root}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
