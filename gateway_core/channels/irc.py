"""IRC, sans-IO: one :class:`IrcClient` per connection — bytes in, events and bytes out, time passed in.

The shell owns the socket (plain or TLS). It feeds what it reads to :meth:`IrcClient.receive_data`,
writes :meth:`IrcClient.data_to_send`, drains :meth:`IrcClient.events`, and calls
:meth:`IrcClient.handle_timer` at :meth:`IrcClient.next_deadline`. Nothing here sleeps, reads a
clock or touches a socket.

Registration, as the published IRC channel does it (channels-observed.md): ``PASS`` (only with a
server password), ``NICK``, ``USER <username> 0 * :<realname>``; no ``CAP`` unless SASL is
configured. With SASL PLAIN: ``CAP REQ :sasl`` first, ``AUTHENTICATE PLAIN``, the base64 of
``authzid NUL user NUL password``, then ``CAP END`` on ``903``; ``904``–``908`` or a ``NAK`` fail
the login. A taken nick (``433``/``436``) is retried as ``nick_``, ``nick_2``, ``nick_3``; ``432``,
``464``, ``465`` fail it. Channels are joined after the end of the MOTD (``376``/``422``).

Liveness: the server's ``PING`` is answered at once. When the connection has been silent for
:data:`PING_AFTER_S`, the client pings; no answer (any line counts) within :data:`PONG_TIMEOUT_S`
ends it with :class:`Failed` ``ping timeout``. Registration must finish within
:data:`REGISTER_TIMEOUT_S`. A line longer than :data:`MAX_LINE` without a newline is a protocol
error (the buffer is bounded).
"""

from __future__ import annotations

import base64
import re
from typing import Final

from msgspec import Struct

from .chunking import chunk_irc, irc_clean

PING_AFTER_S: Final = 90.0
PONG_TIMEOUT_S: Final = 45.0
REGISTER_TIMEOUT_S: Final = 30.0
MAX_LINE: Final = 8192
LOGIN_ERRORS: Final = frozenset({"432", "464", "465"})
NICK_TAKEN: Final = frozenset({"433", "436"})
SASL_FAILED: Final = frozenset({"902", "904", "905", "906", "908"})
_TARGET = re.compile(r"^[^\s:,\x00-\x1f]+$")


class Line(Struct, frozen=True):
    """One parsed line: ``prefix`` (or ``""``), ``command`` (upper case), ``params`` (the trailing last)."""

    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def trailing(self) -> str:
        return self.params[-1] if self.params else ""


def parse_line(raw: str) -> Line | None:
    """Parse one IRC line (IRCv3 tags are skipped); ``None`` for an empty or malformed one."""
    line = raw.rstrip("\r\n")
    if line.startswith("@"):
        _, _, line = line.partition(" ")
    prefix = ""
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
    line = line.lstrip(" ")
    if not line:
        return None
    head, sep, trailing = line.partition(" :")
    words = head.split()
    if not words:
        return None
    params = tuple(words[1:]) + ((trailing,) if sep else ())
    return Line(prefix, words[0].upper(), params)


def parse_prefix(prefix: str) -> tuple[str, str, str]:
    """``nick!user@host`` → ``(nick, user, host)`` (missing parts are ``""``)."""
    nick, _, rest = prefix.partition("!")
    user, _, host = rest.partition("@")
    if not rest and "@" in nick:
        nick, _, host = nick.partition("@")
    return nick, user, host


def valid_target(target: str) -> bool:
    return bool(_TARGET.match(target))


def is_channel(target: str) -> bool:
    return target[:1] in ("#", "&", "+", "!")


_NICK_CHARS = r"A-Za-z0-9_\-\[\]\\`^{}|"


def mentions(text: str, nick: str) -> bool:
    """Whether ``text`` addresses ``nick`` (as a whole word, optionally followed by ``:`` or ``,``)."""
    if not nick:
        return False
    pattern = rf"(?<![{_NICK_CHARS}]){re.escape(nick)}(?![{_NICK_CHARS}])"
    return re.search(pattern, text, re.IGNORECASE) is not None


# --------------------------------------------------------------------------- events


class Event(Struct, frozen=True):
    """Base of what the client reports."""


class Registered(Event, frozen=True):
    """The server welcomed us (``001``) under ``nick``."""

    nick: str


class Joined(Event, frozen=True):
    channel: str


class Message(Event, frozen=True):
    """A ``PRIVMSG`` to us (``direct``) or to a channel we are in; ``seq`` counts per connection."""

    seq: int
    nick: str
    user: str
    host: str
    target: str
    text: str
    direct: bool
    own_nick: str


class Notice(Event, frozen=True):
    target: str
    text: str


class Failed(Event, frozen=True):
    """The connection cannot go on (``fatal``: retrying the same config will not help, e.g. a
    rejected password)."""

    reason: str
    fatal: bool = False


# --------------------------------------------------------------------------- the client


class IrcClient:
    """The client side of one IRC connection."""

    def __init__(
        self,
        *,
        nick: str,
        username: str | None = None,
        realname: str = "OpenClaw",
        password: str | None = None,
        sasl: tuple[str, str] | None = None,
        channels: tuple[str, ...] = (),
        now: float,
        chunk_limit: int = 350,
    ) -> None:
        if not nick.strip():
            raise ValueError("IRC nick is required")
        self.desired_nick = nick.strip()
        self.nick = self.desired_nick
        self.username = (username or self.desired_nick).strip() or "openclaw"
        self.realname = irc_clean(realname) or "OpenClaw"
        self.password = password.strip() if password else None
        self.sasl = sasl
        self.channels = tuple(c.strip() for c in channels if c.strip())
        self.chunk_limit = chunk_limit
        self.registered = False
        self.closed = False
        self.joined: set[str] = set()
        self._buffer = b""
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._started = now
        self._last_rx = now
        self._ping_sent: float | None = None
        self._nick_attempts = 0
        self._sasl_state = "off" if sasl is None else "requested"
        self._seq = 0
        self._joined_after_motd = False
        self._register()

    # ------------------------------------------------------------------ output

    def _send(self, line: str) -> None:
        cleaned = line.replace("\r", "").replace("\n", "").strip()
        if cleaned:
            self._out.append(cleaned.encode("utf-8", "replace") + b"\r\n")

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def _register(self) -> None:
        if self.sasl is not None:
            self._send("CAP REQ :sasl")
        if self.password:
            self._send(f"PASS {self.password}")
        self._send(f"NICK {self.nick}")
        self._send(f"USER {self.username} 0 * :{self.realname}")

    def privmsg(self, target: str, text: str) -> int:
        """Queue ``text`` for ``target`` (newlines become spaces; split at 350 characters at word
        boundaries); returns how many lines were queued. An empty text or a bad target raises."""
        if not valid_target(target):
            raise ValueError(f"Invalid IRC target: {target}")
        chunks = chunk_irc(text, target, self.chunk_limit)
        if not chunks:
            raise ValueError("Message must be non-empty for IRC sends")
        for chunk in chunks:
            self._send(f"PRIVMSG {target} :{chunk}")
        return len(chunks)

    def join(self, channel: str) -> None:
        if not is_channel(channel) or not valid_target(channel):
            raise ValueError(f"IRC JOIN target must be a channel: {channel}")
        self._send(f"JOIN {channel}")

    def quit(self, reason: str = "bye") -> None:
        if not self.closed:
            self._send(f"QUIT :{irc_clean(reason)}" if irc_clean(reason) else "QUIT")
            self.closed = True

    def _fail(self, reason: str, fatal: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self._events.append(Failed(reason, fatal))

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the server; ``b""`` means the server closed the connection."""
        if self.closed:
            return
        if not data:
            self._fail("connection closed by the server" if self.registered else "IRC connection closed before ready")
            return
        self._last_rx = now
        self._ping_sent = None
        self._buffer += data
        while True:
            idx = self._buffer.find(b"\n")
            if idx < 0:
                break
            raw, self._buffer = self._buffer[:idx], self._buffer[idx + 1 :]
            line = parse_line(raw.decode("utf-8", "replace"))
            if line is not None:
                self._line(line)
            if self.closed:
                return
        if len(self._buffer) > MAX_LINE:
            self._fail("IRC line too long")

    def _line(self, line: Line) -> None:
        cmd = line.command
        if cmd == "PING":
            self._send(f"PONG :{line.trailing}")
        elif cmd == "ERROR":
            if not self.registered and "password" in line.trailing.lower():  # ngIRCd answers a bad PASS so, not 464
                self._fail(f"IRC login failed: {line.trailing}", fatal=True)
            else:
                self._fail(f"server closed the link: {line.trailing}".rstrip(": "), fatal=False)
        elif cmd == "CAP":
            self._cap(line)
        elif cmd == "AUTHENTICATE":
            if self._sasl_state == "mechanism" and line.trailing == "+":
                assert self.sasl is not None
                user, secret = self.sasl
                blob = base64.b64encode(f"{user}\0{user}\0{secret}".encode()).decode()
                self._send(f"AUTHENTICATE {blob}")
                self._sasl_state = "sent"
        elif cmd in ("900", "903") and self.sasl is not None:
            if cmd == "903":
                self._sasl_state = "done"
                self._send("CAP END")
        elif cmd in SASL_FAILED and self.sasl is not None and not self.registered:
            self._fail(f"IRC SASL authentication failed ({cmd}): {line.trailing}", fatal=True)
        elif cmd == "001":
            self.registered = True
            if line.params:
                self.nick = line.params[0]
            self._events.append(Registered(self.nick))
        elif cmd in ("376", "422"):
            if not self._joined_after_motd:
                self._joined_after_motd = True
                for channel in self.channels:
                    try:
                        self.join(channel)
                    except ValueError as exc:
                        self._events.append(Notice("", str(exc)))
        elif cmd in NICK_TAKEN and not self.registered:
            self._nick_taken(line)
        elif cmd in LOGIN_ERRORS and not self.registered:
            self._fail(f"IRC login failed ({cmd}): {line.trailing or 'login rejected'}", fatal=True)
        elif cmd == "421" and line.params[1:2] == ("CAP",) and self.sasl is not None:
            self._fail("IRC server does not support CAP (SASL unavailable)", fatal=True)
        elif cmd == "NICK":
            nick, _, _ = parse_prefix(line.prefix)
            if nick.lower() == self.nick.lower() and line.params:
                self.nick = line.params[0]
        elif cmd == "JOIN":
            nick, _, _ = parse_prefix(line.prefix)
            if nick.lower() == self.nick.lower() and line.params:
                channel = line.params[0]
                self.joined.add(channel.lower())
                self._events.append(Joined(channel))
        elif cmd in ("PART", "KICK"):
            self._left(line)
        elif cmd == "PRIVMSG":
            self._privmsg(line)
        elif cmd == "NOTICE":
            self._events.append(Notice(line.params[0] if line.params else "", line.trailing))

    def _cap(self, line: Line) -> None:
        if self.sasl is None or len(line.params) < 2:
            return
        sub = line.params[1].upper()
        caps = line.trailing.lower().split()
        if sub == "ACK" and "sasl" in caps and self._sasl_state == "requested":
            self._sasl_state = "mechanism"
            self._send("AUTHENTICATE PLAIN")
        elif sub == "NAK" and "sasl" in caps:
            self._fail("IRC server refused SASL (CAP NAK)", fatal=True)

    def _nick_taken(self, line: Line) -> None:
        self._nick_attempts += 1
        if self._nick_attempts > 3:
            self._fail(f"IRC login failed ({line.command}): {line.trailing or 'nickname in use'}")
            return
        base = re.sub(r"[^A-Za-z0-9_\-\[\]\\`^{}|]", "", self.desired_nick) or "openclaw"
        suffix = "_" if self._nick_attempts == 1 else f"_{self._nick_attempts}"
        self.nick = base[: 30 - len(suffix)] + suffix
        self._send(f"NICK {self.nick}")

    def _left(self, line: Line) -> None:
        nick, _, _ = parse_prefix(line.prefix)
        channel = line.params[0] if line.params else ""
        gone = line.params[1] if line.command == "KICK" and len(line.params) > 1 else nick
        if gone.lower() == self.nick.lower():
            self.joined.discard(channel.lower())

    def _privmsg(self, line: Line) -> None:
        if len(line.params) < 2:
            return
        nick, user, host = parse_prefix(line.prefix)
        target = line.params[0].strip()
        text = line.trailing
        if not nick or not target or not text.strip():
            return
        if text.startswith("\x01"):  # CTCP (ACTION, VERSION, …): not a message to answer
            return
        self._seq += 1
        direct = not is_channel(target)
        self._events.append(Message(self._seq, nick, user, host, target, text, direct, self.nick))

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        if not self.registered:
            return self._started + REGISTER_TIMEOUT_S
        if self._ping_sent is not None:
            return self._ping_sent + PONG_TIMEOUT_S
        return self._last_rx + PING_AFTER_S

    def handle_timer(self, now: float) -> None:
        due = self.next_deadline()
        if due is None or now < due:
            return
        if not self.registered:
            self._fail("IRC registration timed out")
        elif self._ping_sent is not None:
            self._fail("ping timeout")
        else:
            self._ping_sent = now
            self._send(f"PING :{self.nick}")


def sender_id(nick: str, user: str, host: str) -> str:
    """The stable sender identity: ``nick!user@host`` (lower-cased), as the published channel uses."""
    if host:
        return f"{nick}!{user or '?'}@{host}".lower()
    return nick.lower()


def sender_display(nick: str, user: str, host: str) -> str:
    return f"{nick}!{user or '?'}@{host}" if host else nick


__all__ = [
    "PING_AFTER_S",
    "PONG_TIMEOUT_S",
    "REGISTER_TIMEOUT_S",
    "Event",
    "Failed",
    "IrcClient",
    "Joined",
    "Line",
    "Message",
    "Notice",
    "Registered",
    "is_channel",
    "mentions",
    "parse_line",
    "parse_prefix",
    "sender_display",
    "sender_id",
    "valid_target",
]
