"""A2A on a real gateway, ours and the published one (docs/channels/a2a.md; http-agents-channels.md
§1.3, §5.7): the public agent card, ``POST /a2a/v1`` with per-peer bearer tokens, in the published
order (method 404, then token 401, then size 413), JSON-RPC errors, and a task answered by a turn.
Every answer says ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agent_gateways import KINDS, TOKEN
from test_http_tools_invoke import HttpGateway, started

PEER_TOKEN = "hermes-token-0123456789"
CHANNELS = {"a2a": {"enabled": True, "peers": {"hermes": {"token": PEER_TOKEN}}}}
UNAUTHORIZED = {"error": "Unauthorized; configure channels.a2a.peers with a matching Bearer token"}
NOT_FOUND = {"error": "Not found"}


class A2A(HttpGateway):
    def rpc(self, body: Any = None, *, token: str | None = PEER_TOKEN, content: bytes | None = None) -> httpx.Response:
        return self.post("/a2a/v1", body, secret=token, content=content)


@pytest.fixture(scope="module", params=KINDS)
def a2a(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[A2A]:
    yield from started(A2A, request.param, tmp_path_factory.mktemp(f"a2a-{request.param}"), channels=CHANNELS)


def _json(r: httpx.Response, status: int, body: Any) -> None:
    assert (r.status_code, r.headers["content-type"], r.headers.get("cache-control")) == (
        status, "application/json; charset=utf-8", "no-store")
    assert r.json() == body


def test_the_agent_card_is_public(a2a: A2A) -> None:
    r = a2a.http.get("/.well-known/agent-card.json")
    assert (r.status_code, r.headers.get("cache-control")) == (200, "no-store")
    card = r.json()
    assert card["name"] == "OpenClaw"
    assert card["supportedInterfaces"] == [
        {"url": f"http://127.0.0.1:{a2a.port}/a2a/v1", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]
    assert [s["id"] for s in card["skills"]] == ["main"]
    assert a2a.http.get("/.well-known/agent.json").json() == card  # the older clients' alias
    _json(a2a.http.post("/.well-known/agent-card.json"), 404, NOT_FOUND)


def test_peer_tokens_and_the_published_order(a2a: A2A) -> None:
    params = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
    _json(a2a.rpc(params, token=None), 401, UNAUTHORIZED)
    _json(a2a.rpc(params, token="wrong"), 401, UNAUTHORIZED)
    _json(a2a.rpc(params, token=TOKEN), 401, UNAUTHORIZED)  # the gateway token is not a peer token
    _json(a2a.http.get("/a2a/v1"), 404, NOT_FOUND)  # the method first, even without a token
    _json(a2a.http.get("/a2a/v1", headers={"Authorization": f"Bearer {PEER_TOKEN}"}), 404, NOT_FOUND)
    big = b"x" * (1024 * 1024 + 10)
    _json(a2a.rpc(content=big, token=None), 401, UNAUTHORIZED)  # then the token, then the size
    _json(a2a.rpc(content=big), 413, {"error": "Request body exceeds the 1 MiB limit"})


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{bad", {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}),
        (b'{"jsonrpc":"2.0","id":7,"method":"Nope"}', {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "Method not found: Nope"}}),
        (b'{"jsonrpc":"2.0","id":8,"method":"GetTask","params":{"id":"x"}}',
         {"jsonrpc": "2.0", "id": 8, "error": {"code": -32001, "message": "Task not found"}}),
    ],
)
def test_json_rpc_errors_travel_in_a_200(a2a: A2A, content: bytes, error: dict[str, Any]) -> None:
    _json(a2a.rpc(content=content), 200, error)


def test_a_task_is_answered_by_a_turn_and_can_be_polled(a2a: A2A) -> None:
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": f"hello over a2a {a2a.kind}"}]}
    r = a2a.rpc({"jsonrpc": "2.0", "id": "s1", "method": "SendMessage", "params": {"message": message}})
    assert r.status_code == 200 and r.headers.get("cache-control") == "no-store"
    task = r.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "upstream-reply-" in task["artifacts"][0]["parts"][0]["text"]
    polled = a2a.rpc({"jsonrpc": "2.0", "id": "g1", "method": "GetTask", "params": {"id": task["id"]}}).json()
    assert polled["result"]["id"] == task["id"] and polled["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
