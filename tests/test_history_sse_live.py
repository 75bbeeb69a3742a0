"""``GET /sessions/<key>/history`` with ``Accept: text/event-stream`` over real sockets, against ours
and (with ``OPENCLAW_REFERENCE_BIN``) the published gateway, on the http-openai-observed.md §0.1
config with the scripted upstream: both must stream the same frames."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_gateways import KINDS, TOKEN, running_gateway

AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = "agent:main:openai-user:live-sse"


def _chat(url: str, text: str) -> None:
    done = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=60,
                      json={"model": "openclaw", "user": "live-sse", "messages": [{"role": "user", "content": text}]})
    assert done.status_code == 200, done.text


class Frames:
    """An open SSE response read block by block (every read bounded by the client's timeout)."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.iter_bytes()
        self.buffer = b""

    def next(self) -> tuple[str | None, Any]:
        while b"\n\n" not in self.buffer:
            self.buffer += next(self.chunks)
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        text = block.decode()
        if not text.startswith("event:"):
            return None, text
        name, _, data = text.partition("\n")
        return name[len("event: "):], json.loads(data[len("data: "):])

    def next_event(self) -> tuple[str, Any]:
        """The next named frame (keep-alive comments skipped)."""
        for _ in range(100):
            name, data = self.next()
            if name is not None:
                return name, data
        raise AssertionError("only comments")


@pytest.mark.parametrize("kind", KINDS)
def test_history_stream_snapshot_then_appended_messages(kind: str, tmp_path: Path) -> None:
    with running_gateway(kind, tmp_path) as gw:
        _chat(gw.url, "first")
        plain = httpx.get(f"{gw.url}/sessions/{KEY}/history", headers=AUTH, timeout=30).json()
        json_again = httpx.get(f"{gw.url}/sessions/{KEY}/history", headers={**AUTH, "accept": "*/*"}, timeout=30)
        assert json_again.headers["content-type"].startswith("application/json")
        with httpx.stream("GET", f"{gw.url}/sessions/{KEY}/history", headers={**AUTH, "accept": "text/event-stream"},
                          timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            frames = Frames(response)
            assert frames.next() == (None, "retry: 1000")
            name, page = frames.next_event()
            assert name == "history" and page["sessionKey"] == KEY
            assert list(page) == list(plain) and page["hasMore"] is False
            assert [m["role"] for m in page["items"]] == ["user", "assistant"] and page["items"] == page["messages"]
            assert [m["__openclaw"]["seq"] for m in page["items"]] == [1, 2]
            _chat(gw.url, "second")
            got = [frames.next_event(), frames.next_event()]
        assert [name for name, _ in got] == ["message", "message"]
        for (_, data), seq, role in zip(got, (3, 4), ("user", "assistant"), strict=True):
            assert list(data) == ["sessionKey", "message", "messageId", "messageSeq"]
            assert data["sessionKey"] == KEY and data["messageSeq"] == seq and data["message"]["role"] == role
            assert data["message"]["__openclaw"]["seq"] == seq and data["messageId"] == data["message"]["__openclaw"]["id"]
        assert got[0][1]["message"]["content"] == "second"
        assert "second" in got[1][1]["message"]["content"][0]["text"]
        # The client left: the gateway goes on serving.
        assert httpx.get(f"{gw.url}/sessions/{KEY}/history", headers=AUTH, timeout=30).json()["items"][-1]["role"] == "assistant"


@pytest.mark.parametrize("kind", KINDS)
def test_history_stream_with_limit_sends_pages(kind: str, tmp_path: Path) -> None:
    with running_gateway(kind, tmp_path) as gw:
        _chat(gw.url, "first")
        with httpx.stream("GET", f"{gw.url}/sessions/{KEY}/history?limit=1",
                          headers={**AUTH, "accept": "application/json, text/event-stream"}, timeout=60) as response:
            frames = Frames(response)
            name, page = frames.next_event()
            assert name == "history" and page["hasMore"] is True and page["nextCursor"] == "2"
            assert [m["__openclaw"]["seq"] for m in page["items"]] == [2]
            _chat(gw.url, "second")
            seen: list[int] = []
            while 4 not in seen:  # the published gateway sends one page per appended message, ours one per write
                name, page = frames.next_event()
                assert name == "history" and len(page["items"]) == 1 and page["hasMore"] is True
                seen.append(page["items"][0]["__openclaw"]["seq"])
            assert seen[-1] == 4 and page["nextCursor"] == "4"


@pytest.mark.parametrize("kind", KINDS)
def test_history_stream_of_an_unknown_session_is_a_json_404(kind: str, tmp_path: Path) -> None:
    with running_gateway(kind, tmp_path) as gw:
        got = httpx.get(f"{gw.url}/sessions/agent:main:nothere/history", headers={**AUTH, "accept": "text/event-stream"},
                        timeout=30)
        assert got.status_code == 404
        assert got.json() == {"ok": False, "error": {"type": "not_found", "message": "Session not found: agent:main:nothere"}}


@pytest.mark.parametrize("kind", KINDS)
def test_history_stream_ends_when_the_client_leaves(kind: str, tmp_path: Path) -> None:
    """Many clients open a stream and leave at once (a reset socket): the gateway stays up and answers."""
    with running_gateway(kind, tmp_path) as gw:
        _chat(gw.url, "first")
        request = (f"GET /sessions/{KEY}/history HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
                sock.sendall(request)
                got = b""
                while b"event: history" not in got:
                    data = sock.recv(65536)
                    assert data, got
                    got += data
                assert got.startswith(b"HTTP/1.1 200")
        _chat(gw.url, "after")
        page = httpx.get(f"{gw.url}/sessions/{KEY}/history", headers=AUTH, timeout=30).json()
        assert [m["role"] for m in page["items"]] == ["user", "assistant"] * 2
