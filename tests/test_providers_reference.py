"""The scripted upstream drives the published gateway, and our wire mapping matches what it sends.

Needs the reference (``OPENCLAW_REFERENCE_BIN``, see tests/test_reference_interop.py). Starts
tests/upstream.py in-process and the published gateway with the http-openai-observed.md §0.1
config pointing at it, then checks over real HTTP: a chat completion comes back with the
upstream's default reply; the body that reached the upstream has the keys, order and shapes
that :func:`build_chat_body` produces for the same conversation; an upstream 400 is surfaced at
once; embeddings reach the upstream in the shape :func:`build_embeddings_body` gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gateway_proc import free_port, stop_process
from upstream import ScriptedUpstream

from gateway_core.providers import ChatMessage, ModelRequest, TextPart, ToolCall, ToolSpec
from gateway_core.providers import openai_completions as oc

REFERENCE = os.environ.get("OPENCLAW_REFERENCE_BIN")
pytestmark = pytest.mark.skipif(
    not REFERENCE,
    reason="OPENCLAW_REFERENCE_BIN is not set: install the published gateway with "
    "../shared/tools/install-reference.sh and export the launcher path it prints",
)

TOKEN = "provider-interop-token-0123"
KEY = "sk-upstream-test-key"


def _config(port: int, upstream: str) -> dict[str, Any]:
    model = {"reasoning": False, "input": ["text"], "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
             "contextWindow": 128000, "maxTokens": 4096}
    return {
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": TOKEN},
                    "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"mode": "merge", "providers": {"upstream": {
            "baseUrl": upstream, "apiKey": KEY, "api": "openai-completions", "timeoutSeconds": 20,
            "models": [{"id": "scripted", "name": "Scripted", **model, "compat": {"supportsUsageInStreaming": True}},
                       {"id": "scripted-b", "name": "Scripted B", **model}]}}},
        "agents": {"defaults": {"model": {"primary": "upstream/scripted"}, "heartbeat": {"every": "0m"}}},
        "memory": {"search": {"provider": "upstream", "model": "embed-model"}},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ScriptedUpstream]]:
    tmp = tmp_path_factory.mktemp("provider-ref")
    with ScriptedUpstream(api_key=KEY, delta_delay_s=0.01) as up:
        port = free_port()
        home = tmp / "home"
        (home / ".openclaw").mkdir(parents=True)
        (home / ".openclaw" / "openclaw.json").write_text(json.dumps(_config(port, up.base_url)))
        log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [REFERENCE or "", "gateway", "run", "--port", str(port)],
            env={**os.environ, "HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (tmp / "gateway.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "reference gateway not ready within 120 s"
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            yield url, up
        finally:
            stop_process(proc)
            log.close()


def _chat(url: str, content: str, timeout: float = 90) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=timeout, headers={"authorization": f"Bearer {TOKEN}"},
                      json={"model": "openclaw", "messages": [{"role": "user", "content": content}]})


def _as_request(body: dict[str, Any]) -> ModelRequest:
    """The conversation the gateway sent, as the neutral request our agent loop would build."""
    messages = []
    for m in body["messages"][1:]:
        content = m.get("content")
        if isinstance(content, list):
            content = [TextPart(p["text"]) for p in content]
        calls = [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls", [])]
        messages.append(ChatMessage(role=m["role"], content=content, tool_calls=calls, tool_call_id=m.get("tool_call_id")))
    tools = [ToolSpec(name=t["function"]["name"], description=t["function"]["description"],
                      parameters=t["function"]["parameters"]) for t in body["tools"]]
    return ModelRequest(provider="upstream", api="openai-completions", model=body["model"], system=body["messages"][0]["content"],
                        messages=messages, tools=tools, max_tokens=body.get("max_completion_tokens"))


def test_reference_reaches_the_scripted_upstream_and_bodies_match(reference: tuple[str, ScriptedUpstream]) -> None:
    url, up = reference
    before = len(up.chat_requests())
    answer = _chat(url, "hello gateway")
    assert answer.status_code == 200, answer.text
    text = answer.json()["choices"][0]["message"]["content"]
    calls = up.chat_requests()[before:]
    assert calls and text == f"upstream-reply-{calls[-1].n}: hello gateway"
    got = calls[-1]
    assert got.credential == "ok" and got.headers["authorization"] == f"Bearer <redacted len={len(KEY)}>"
    assert json.dumps(oc.build_chat_body(_as_request(got.body))) == json.dumps(got.body)


def test_reference_surfaces_an_upstream_400_at_once(reference: tuple[str, ScriptedUpstream]) -> None:
    url, up = reference
    answer = _chat(url, "please ERR400")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "400 scripted bad request: unsupported parameter"


def test_reference_embeddings_reach_the_upstream_in_our_shape(reference: tuple[str, ScriptedUpstream]) -> None:
    url, up = reference
    answer = httpx.post(f"{url}/v1/embeddings", timeout=60, headers={"authorization": f"Bearer {TOKEN}"},
                        json={"model": "openclaw", "input": "alpha interop", "dimensions": 4})
    assert answer.status_code == 200, answer.text
    mine = [r for r in up.requests if r.path == "/v1/embeddings" and r.body.get("input") == ["alpha interop"]]
    assert mine and json.dumps(mine[-1].body) == json.dumps(oc.build_embeddings_body("embed-model", "alpha interop", 4))
    assert len(answer.json()["data"][0]["embedding"]) == 4

