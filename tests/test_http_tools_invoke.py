"""``POST /tools/invoke`` on a real gateway, ours and the published one (http-agents-channels.md §1.7,
§4.2; http-openai-observed.md §6).

Auth (401 JSON, 405 text), the refusals' shapes (no name, bad JSON, unknown or denied tool,
413), session targets, and built-in tools answering with real data: a session made by a chat
completion shows in ``sessions_list``. Scope and the configured deny list need identity callers
or other configs: tests/shell/test_http_memory.py.

:class:`HttpGateway` and :func:`started` are shared by the other tests/test_http_*.py modules: one
gateway per module and kind, with an HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import agent_gateways
import httpx
import pytest
from agent_gateways import KINDS, TOKEN, agent_gateway, observed_config
from upstream import ScriptedUpstream

JSON = "application/json; charset=utf-8"
#: DEVIATION (recorded, not fixed here: gateway_core/agents/tools.py is outside this change): ours names
#: a ``sessions_list`` row's key ``sessionKey``; the published tool names it ``key``.
KEY_FIELD = {"ours": "sessionKey", "reference": "key"}


class HttpGateway:
    """One started gateway of ``kind`` (``ours`` or ``reference``) and an HTTP client for it."""

    def __init__(self, kind: str, port: int, upstream: ScriptedUpstream) -> None:
        self.kind, self.port, self.upstream = kind, port, upstream
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)

    def post(self, path: str, body: Any = None, *, secret: str | None = None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` as JSON (or ``content`` as is), with ``secret`` as the bearer when given."""
        sent = dict(headers or {})
        if secret is not None:
            sent["Authorization"] = f"Bearer {secret}"
        if content is not None:
            return self.http.post(path, content=content, headers=sent)
        return self.http.post(path, json=body, headers=sent)


G = TypeVar("G", bound=HttpGateway)


def started(cls: type[G], kind: str, tmp: Path, config: Callable[[dict[str, Any]], None] | None = None,
            **extra: Any) -> Iterator[G]:
    """``cls`` on a gateway from ``agent_gateway(kind, tmp, **extra)``, closed after; ``config`` may edit
    the §0.1 config first (agent_gateway() builds it through ``observed_config``)."""

    def edited(port: int, upstream: str, **more: Any) -> dict[str, Any]:
        cfg = observed_config(port, upstream, **more)
        if config is not None:
            config(cfg)
        return cfg

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agent_gateways, "observed_config", edited)
        running = agent_gateway(kind, tmp, **extra)
        port, upstream = running.__enter__()
    try:
        gw = cls(kind, port, upstream)
        try:
            yield gw
        finally:
            gw.http.close()
    finally:
        running.__exit__(None, None, None)


class Tools(HttpGateway):
    def invoke(self, body: Any = None, *, token: str | None = TOKEN, content: bytes | None = None) -> httpx.Response:
        return self.post("/tools/invoke", body, secret=token, content=content)


@pytest.fixture(scope="module", params=KINDS)
def tools(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    yield from started(Tools, request.param, tmp_path_factory.mktemp(f"tools-{request.param}"))


def _error(r: httpx.Response, status: int, type_: str, message: str) -> None:
    assert (r.status_code, r.headers["content-type"]) == (status, JSON)
    assert r.json() == {"ok": False, "error": {"type": type_, "message": message}}


def test_gateway_auth_and_method(tools: Tools) -> None:
    unauthorized = {"error": {"message": "Unauthorized", "type": "unauthorized"}}
    for token in (None, "wrong-token"):
        r = tools.invoke({"tool": "sessions_list"}, token=token)
        assert (r.status_code, r.headers["content-type"], r.json()) == (401, JSON, unauthorized)
    r = tools.http.post("/tools/invoke", json={"tool": "sessions_list"}, headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401  # only the Bearer scheme carries the secret
    r = tools.http.get("/tools/invoke", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (r.status_code, r.headers["allow"], r.text) == (405, "POST", "Method Not Allowed")
    assert tools.http.post(f"/tools/invoke?token={TOKEN}", json={"tool": "sessions_list"}).status_code == 401


@pytest.mark.parametrize("name", ["exec", "gateway", "sessions_spawn", "cron", "ls", "no_such_tool"])
def test_unknown_and_denied_tools_are_not_available(tools: Tools, name: str) -> None:
    """The HTTP deny list, owner-only tools, tools not offered here and unknown names all look the same."""
    shown = "automations" if name == "cron" else name  # the legacy name is read as its successor
    _error(tools.invoke({"tool": name, "args": {}}), 404, "not_found", f"Tool not available: {shown}")


def test_request_errors(tools: Tools) -> None:
    _error(tools.invoke({"args": {}}), 400, "invalid_request", "tools.invoke requires name")
    _error(tools.invoke({"tool": "  "}), 400, "invalid_request", "tools.invoke requires name")
    r = tools.invoke(content=b'{"tool":')
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = tools.invoke(content=b"x" * (2 * 1024 * 1024 + 1))
    assert (r.status_code, r.json()) == (413, {"error": {"message": "Payload too large", "type": "invalid_request_error"}})
    _error(tools.invoke({"tool": "sessions_list", "agentId": "nope"}), 400, "invalid_request", 'Unknown agent id "nope"')
    _error(tools.invoke({"tool": "sessions_history", "args": {"sessionKey": 12345}}), 400, "tool_error", "sessionKey required")


def test_a_session_for_another_agent_is_refused(tools: Tools) -> None:
    r = tools.invoke({"tool": "sessions_list", "sessionKey": "agent:other:main", "agentId": "main"})
    body = r.json()
    assert r.status_code == 400 and body["ok"] is False and body["error"]["type"] == "invalid_request"
    # DEVIATION (wording): ours says 'agent id "main" does not match session agent "other"' (the spec's
    # words, pinned by tests/openai/test_invoke_hooks.py); the published one says
    # 'agent "main" does not match session key agent "other"'.
    assert '"main" does not match session' in body["error"]["message"] and '"other"' in body["error"]["message"]


def test_agents_list_answers_the_roster(tools: Tools) -> None:
    r = tools.invoke({"name": "agents_list", "tool": "exec"})  # ``name`` wins over ``tool``
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True
    assert body["result"]["details"]["agents"] == [
        {"id": "main", "configured": True, "model": "upstream/scripted", "agentRuntime": {"id": "auto", "source": "implicit"}}
    ]


def test_sessions_list_shows_a_session_made_over_http(tools: Tools) -> None:
    user = f"tools-probe-{tools.kind}"
    chat = tools.http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "openclaw", "user": user, "messages": [{"role": "user", "content": "hello tools"}]})
    assert chat.status_code == 200, chat.text
    r = tools.invoke({"tool": "sessions_list", "args": {}})
    assert r.status_code == 200
    result = r.json()["result"]
    details = result["details"]
    assert result["content"][0]["type"] == "text" and result["content"][0]["text"].startswith("{\n  \"count\": ")
    assert details["count"] == len(details["sessions"])
    rows = [s for s in details["sessions"] if s.get(KEY_FIELD[tools.kind]) == f"agent:main:openai-user:{user}"]
    assert len(rows) == 1, details
    assert rows[0]["agentId"] == "main" and isinstance(rows[0]["sessionId"], str) and rows[0]["sessionId"]
