"""The sans-IO IRC client, paired with a scripted server in memory (no sockets, virtual time)."""

from __future__ import annotations

import base64

import pytest

from gateway_core.channels import irc


def client(now: float = 0.0, **kw: object) -> irc.IrcClient:
    return irc.IrcClient(nick="ocbot", channels=("#oc",), now=now, **kw)  # type: ignore[arg-type]


def sent(c: irc.IrcClient) -> list[str]:
    return c.data_to_send().decode().split("\r\n")[:-1]


def feed(c: irc.IrcClient, *lines: str, now: float = 1.0) -> list[irc.Event]:
    c.receive_data("".join(f"{ln}\r\n" for ln in lines).encode(), now)
    return c.events()


WELCOME = (":irc.test 001 ocbot :Welcome", ":irc.test 375 ocbot :- motd", ":irc.test 376 ocbot :End of MOTD command")


def test_registration_as_published_then_join_after_motd() -> None:
    c = client()
    assert sent(c) == ["NICK ocbot", "USER ocbot 0 * :OpenClaw"]  # no CAP, no PASS
    events = feed(c, WELCOME[0])
    assert events == [irc.Registered("ocbot")] and sent(c) == []
    feed(c, *WELCOME[1:])
    assert sent(c) == ["JOIN #oc"]
    feed(c, ":ocbot!~ocbot@127.0.0.1 JOIN :#oc")
    assert "#oc" in c.joined


def test_server_password_and_line_parsing() -> None:
    c = client(password="s3cret", username="bot", realname="My\nBot")
    assert sent(c) == ["PASS s3cret", "NICK ocbot", "USER bot 0 * :My Bot"]
    assert irc.parse_line("@time=x :nick!u@h PRIVMSG #oc :hello: there") == irc.Line("nick!u@h", "PRIVMSG", ("#oc", "hello: there"))
    assert irc.parse_line("PING :abc") == irc.Line("", "PING", ("abc",)) and irc.parse_line("   ") is None
    assert irc.parse_prefix("alice!~a@host") == ("alice", "~a", "host")


def test_ping_pong_messages_and_mentions() -> None:
    c = client()
    feed(c, *WELCOME)
    c.data_to_send()
    feed(c, "PING :irc.test")
    assert sent(c) == ["PONG :irc.test"]
    events = feed(c, ":alice!~alice@127.0.0.1 PRIVMSG ocbot :hi there", ":alice!~alice@127.0.0.1 PRIVMSG #oc :ocbot: question",
                  ":alice!~alice@127.0.0.1 PRIVMSG #oc :\x01ACTION waves\x01")
    assert events == [
        irc.Message(1, "alice", "~alice", "127.0.0.1", "ocbot", "hi there", True, "ocbot"),
        irc.Message(2, "alice", "~alice", "127.0.0.1", "#oc", "ocbot: question", False, "ocbot"),
    ]
    assert irc.mentions("ocbot: hi", "ocbot") and irc.mentions("hey OCBOT, you", "ocbot")
    assert not irc.mentions("ocbot_ is not me", "ocbot") and not irc.mentions("xocbot", "ocbot")
    assert irc.sender_id("Alice", "~alice", "Host") == "alice!~alice@host"


def test_nick_collision_fallbacks_then_failure() -> None:
    c = client()
    c.data_to_send()
    feed(c, ":irc.test 433 * ocbot :Nickname already in use")
    assert sent(c) == ["NICK ocbot_"]
    feed(c, ":irc.test 433 * ocbot_ :Nickname already in use")
    assert sent(c) == ["NICK ocbot_2"]
    assert feed(c, ":irc.test 433 * ocbot_2 :in use") == [] and sent(c) == ["NICK ocbot_3"]
    assert feed(c, ":irc.test 433 * ocbot_3 :in use") == [irc.Failed("IRC login failed (433): in use")] and c.closed


def test_login_errors_are_fatal() -> None:
    for line in (":irc.test 464 ocbot :Password incorrect", "ERROR :Access denied: Bad password?"):
        c = client()
        (event,) = feed(c, line)
        assert isinstance(event, irc.Failed) and event.fatal and "IRC login failed" in event.reason
    c = client()
    feed(c, *WELCOME)
    (event,) = feed(c, "ERROR :Closing Link: server shutting down")
    assert isinstance(event, irc.Failed) and not event.fatal


def test_sasl_plain() -> None:
    c = client(sasl=("botuser", "pw"))
    assert sent(c) == ["CAP REQ :sasl", "NICK ocbot", "USER ocbot 0 * :OpenClaw"]
    feed(c, ":irc.test CAP * ACK :sasl")
    assert sent(c) == ["AUTHENTICATE PLAIN"]
    feed(c, "AUTHENTICATE +")
    (line,) = sent(c)
    assert base64.b64decode(line.split()[1]) == b"botuser\0botuser\0pw"
    feed(c, ":irc.test 900 ocbot ocbot!u@h botuser :You are now logged in", ":irc.test 903 ocbot :SASL authentication successful")
    assert sent(c) == ["CAP END"]
    assert feed(c, WELCOME[0]) == [irc.Registered("ocbot")]
    bad = client(sasl=("botuser", "nope"))
    feed(bad, ":irc.test CAP * ACK :sasl", "AUTHENTICATE +")
    (event,) = feed(bad, ":irc.test 904 ocbot :SASL authentication failed")
    assert isinstance(event, irc.Failed) and event.fatal
    nak = client(sasl=("u", "p"))
    (event,) = feed(nak, ":irc.test CAP * NAK :sasl")
    assert isinstance(event, irc.Failed) and event.fatal


def test_liveness_deadlines_on_virtual_time() -> None:
    c = client(now=0.0)
    assert c.next_deadline() == irc.REGISTER_TIMEOUT_S
    feed(c, *WELCOME, now=1.0)
    c.data_to_send()
    due = c.next_deadline()
    assert due == 1.0 + irc.PING_AFTER_S
    c.handle_timer(due - 0.5)
    assert sent(c) == []
    c.handle_timer(due)
    assert sent(c) == ["PING :ocbot"]
    assert c.next_deadline() == due + irc.PONG_TIMEOUT_S
    feed(c, ":irc.test PONG irc.test :ocbot", now=due + 3)  # any line counts as alive
    assert c.next_deadline() == due + 3 + irc.PING_AFTER_S
    c.handle_timer(due + 3 + irc.PING_AFTER_S)
    c.data_to_send()
    c.handle_timer(due + 3 + irc.PING_AFTER_S + irc.PONG_TIMEOUT_S)
    assert c.closed and c.events() == [irc.Failed("ping timeout")] and c.next_deadline() is None
    slow = client(now=0.0)
    slow.handle_timer(irc.REGISTER_TIMEOUT_S)
    assert slow.events() == [irc.Failed("IRC registration timed out")]


def test_privmsg_chunks_and_bounded_buffer() -> None:
    c = client()
    feed(c, *WELCOME)
    c.data_to_send()
    assert c.privmsg("#oc", "one\ntwo") == 1 and sent(c) == ["PRIVMSG #oc :one two"]
    with pytest.raises(ValueError):
        c.privmsg("bad target", "x")
    with pytest.raises(ValueError):
        c.privmsg("#oc", "\n\n")
    c.receive_data(b"x" * (irc.MAX_LINE + 1), 2.0)
    assert c.events() == [irc.Failed("IRC line too long")]
    closed = client()
    closed.receive_data(b"", 1.0)
    assert closed.events() == [irc.Failed("IRC connection closed before ready")]
