"""``POST /api/v1/admin/rpc`` on a real gateway, ours and the published one (http-agents-channels.md §1.10).

The plugin route with gateway auth: 401, its own JSON 405 and 413, body errors, the allowlist
(``commands.list`` answered by the route, in the published order; other methods refused with an
RPC error), methods dispatched with their normal validation, ids generated when missing, and
``Cache-Control: no-store`` everywhere. Scopes of identity callers: tests/test_http_auth.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agent_gateways import KINDS, TOKEN
from test_http_tools_invoke import HttpGateway, started

from gateway_core.admin_rpc import METHODS

PATH = "/api/v1/admin/rpc"
PLUGINS = {"entries": {"admin-http-rpc": {"enabled": True}}}


class Rpc(HttpGateway):
    def post(self, body: Any = None, *, content: bytes | None = None, token: str | None = TOKEN) -> httpx.Response:  # type: ignore[override]
        return super().post(PATH, body, secret=token, content=content)

    def call(self, method: str, params: Any = None, rid: str = "r1") -> httpx.Response:
        body: dict[str, Any] = {"id": rid, "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body)


@pytest.fixture(scope="module", params=KINDS)
def rpc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rpc]:
    yield from started(Rpc, request.param, tmp_path_factory.mktemp(f"admin-{request.param}"), plugins=PLUGINS)


def _invalid(r: httpx.Response, message: str) -> None:
    assert (r.status_code, r.headers["cache-control"]) == (400, "no-store")
    assert r.json() == {"ok": False, "error": {"type": "invalid_request", "message": message}}


def test_auth_and_method(rpc: Rpc) -> None:
    r = rpc.post({"method": "health"}, token=None)
    assert (r.status_code, r.json()) == (401, {"error": {"message": "Unauthorized", "type": "unauthorized"}})
    assert rpc.post({"method": "health"}, token="wrong").status_code == 401
    r = rpc.http.get(PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (r.status_code, r.headers["allow"], r.headers["cache-control"]) == (405, "POST", "no-store")
    assert r.json() == {"ok": False, "error": {"type": "method_not_allowed", "message": "Method Not Allowed"}}


def test_body_errors(rpc: Rpc) -> None:
    _invalid(rpc.post(content=b"{x"), "request body must be valid JSON")
    _invalid(rpc.post([1]), "request body must be an object")
    _invalid(rpc.post({"method": " "}), "method must be a non-empty string")
    _invalid(rpc.post({"params": {}}), "method must be a non-empty string")
    r = rpc.post(content=b"x" * (1024 * 1024 + 1))
    assert (r.status_code, r.headers["cache-control"]) == (413, "no-store")
    assert r.json() == {"ok": False, "error": {"type": "invalid_request", "message": "Payload too large"}}


def test_an_empty_body_is_an_error_here(rpc: Rpc) -> None:
    r = rpc.post(content=b"", token=TOKEN)
    _invalid(r, "request body must be JSON")


@pytest.mark.parametrize("method", ["chat.send", "agent", "sessions.list", "tools.invoke", "no.such.method"])
def test_methods_off_the_allowlist_are_refused(rpc: Rpc, method: str) -> None:
    r = rpc.call(method, {}, rid="x1")
    assert (r.status_code, r.headers["cache-control"]) == (400, "no-store")
    assert r.json() == {"id": "x1", "ok": False,
                        "error": {"code": "INVALID_REQUEST", "message": f"admin HTTP RPC method is not supported: {method}"}}


def test_commands_list_is_the_allowlist_in_the_published_order(rpc: Rpc) -> None:
    r = rpc.call("commands.list", rid="c1")
    assert (r.status_code, r.headers["cache-control"]) == (200, "no-store")
    assert r.json() == {"id": "c1", "ok": True, "payload": {"methods": list(METHODS)}}


def test_allowed_methods_are_dispatched(rpc: Rpc) -> None:
    health = rpc.call("health", rid="h1").json()
    assert health["id"] == "h1" and health["ok"] is True and health["payload"]["ok"] is True
    agents = rpc.call("agents.list", {}).json()["payload"]
    assert agents["defaultId"] == "main" and [a["id"] for a in agents["agents"]] == ["main"]
    config = rpc.call("config.get", {}).json()["payload"]
    assert config["exists"] is True and '"admin-http-rpc"' in config["raw"]
    status = rpc.call("channels.status", {}).json()
    assert status["ok"] is True and isinstance(status["payload"], dict)


def test_params_are_validated_as_on_the_websocket(rpc: Rpc) -> None:
    r = rpc.call("channels.status", {"bogus": 1}, rid="v1")
    assert r.status_code == 400
    assert r.json() == {"id": "v1", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "invalid channels.status params: at root: unexpected property 'bogus'"}}


def test_an_id_is_generated_when_missing(rpc: Rpc) -> None:
    body = rpc.post({"method": "commands.list"}).json()
    assert body["ok"] is True and uuid.UUID(body["id"])
