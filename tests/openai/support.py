"""Shared test helpers: the recordings' gateway config, request contexts, and runs that end as recorded."""

from __future__ import annotations

import json
from typing import Any

from gateway_core.agents.loop import TurnResult
from gateway_core.agents.roster import roster
from gateway_core.agents.store import Usage
from gateway_core.openai.chat import RequestContext
from gateway_core.providers.types import ToolCall

REQUEST_ID = "00000000-0000-4000-8000-000000000001"
AUX_ID = "00000000-0000-4000-8000-000000000002"
NOW_S = 1_795_270_000
NOW_MS = NOW_S * 1000
TOKEN = "<REDACTED_TOKEN>"

#: http-openai-observed.md §0.1, the config the recordings were made with.
MODEL = {"reasoning": False, "input": ["text"], "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
         "contextWindow": 128000, "maxTokens": 4096}
CONFIG: dict[str, Any] = {
    "gateway": {"mode": "local", "auth": {"mode": "token", "token": TOKEN},
                "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
    "models": {"mode": "merge", "providers": {"upstream": {
        "baseUrl": "http://127.0.0.1:19842/v1", "apiKey": "sk-upstream-test-key", "api": "openai-completions",
        "timeoutSeconds": 20,
        "models": [{"id": "scripted", "name": "Scripted", **MODEL, "compat": {"supportsUsageInStreaming": True}},
                   {"id": "scripted-b", "name": "Scripted B", **MODEL}]}}},
    "agents": {"defaults": {"model": {"primary": "upstream/scripted"}, "heartbeat": {"every": "0m"}}},
    "memory": {"search": {"provider": "upstream", "model": "embed-model"}},
}


def context(headers: dict[str, str] | None = None, config: dict[str, Any] | None = None, **kw: Any) -> RequestContext:
    cfg = CONFIG if config is None else config
    return RequestContext(
        headers={k.lower(): v for k, v in (headers or {}).items()},
        roster=roster(cfg),
        config=cfg,
        request_id=kw.pop("request_id", REQUEST_ID),
        now_s=kw.pop("now_s", NOW_S),
        now_ms=kw.pop("now_ms", NOW_MS),
        aux_ids=kw.pop("aux_ids", (AUX_ID,)),
        **kw,
    )


def usage(prompt: int, completion: int, cache_read: int = 0, cache_write: int = 0) -> Usage:
    return Usage(input=prompt - cache_read, output=completion, cache_read=cache_read, cache_write=cache_write,
                 total=prompt + completion + cache_write)


def ok(text: str, prompt: int = 104, completion: int = 7, **kw: Any) -> TurnResult:
    u = usage(prompt, completion)
    return TurnResult(status="ok", text=text, usage=u, last_usage=u, provider="upstream", model="scripted", **kw)


def tool_calls(*calls: tuple[str, str, Any], text: str = "", prompt: int = 199, completion: int = 7) -> TurnResult:
    found = [ToolCall(i, n, a if isinstance(a, str) else json.dumps(a, separators=(",", ":"))) for i, n, a in calls]
    return ok(text, prompt, completion, stop_reason="tool_calls", tool_calls=found)


def provider_failure(kind: str, message: str, status: int | None = None, error: str | None = None) -> TurnResult:
    detail: dict[str, Any] = {"failoverReason": kind, "provider": "upstream", "model": "scripted",
                              "providerErrorMessagePreview": message}
    if status is not None:
        detail["httpStatus"] = status
    return TurnResult(status="error", stop_reason="error", error=error or message, error_detail=detail)
