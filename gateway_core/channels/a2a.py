"""A2A (docs/channels/a2a.md, http-agents-channels.md §5.7): the pure side of ``POST /a2a/v1``.

What the HTTP layer mounts (the route itself lives there): check the path and method (anything but
``POST /a2a/v1`` is 404 ``{"error":"Not found"}``), then :func:`authenticate` the
``Authorization: Bearer`` header against ``channels.a2a.peers.<name>.token`` (401
:data:`UNAUTHORIZED_BODY`), then the size (over 1 MiB: 413), then hand the body to :func:`exchange`, which answers JSON-RPC 2.0
with HTTP 200 whatever happens inside (errors travel as JSON-RPC errors):

==========  =====================================================================
code        when (message as the published gateway words it)
==========  =====================================================================
-32700      the body is not JSON (``Parse error``)
-32600      not a JSON-RPC 2.0 request, or an empty batch / over 30 entries
-32601      unknown method (``Method not found: <m>``)
-32602      bad params (``Invalid task params: id is required``, …)
-32001      ``Task not found`` (unknown id, or another peer's task)
-32004      ``CancelTask``: refused, since a run cannot be stopped honestly
-32000      ``Peer is rate limited`` (sliding 60 s window per peer, default 30)
==========  =====================================================================

``SendMessage`` (alias ``message/send``) runs the routed agent in the peer's own session (one per
peer and ``contextId``, the most isolated DM scope), waits for it up to ``replyTimeoutMs``
(``configuration.returnImmediately`` answers at once) and answers the task; ``GetTask`` (alias
``tasks/get``) returns one of the peer's tasks. Text starting with ``/`` is rejected
(``TASK_STATE_REJECTED``). Tasks live in memory (:class:`TaskStore`: 500 at most, terminal ones
24 h). Ids come in from the caller (``ids``), never from a random source here.
"""

from __future__ import annotations

import hmac
import json
import re
from collections import OrderedDict, deque
from collections.abc import Generator, Iterator
from typing import Any, Final

from msgspec import Struct

from ..agents import keys
from ..agents import roster as R
from ..agents.loop import TurnSpec, run_turn
from ..app.effects import Effect, Sleep, WaitRun
from ..app.gateway import Ctx, Job
from ..app.runs import Run
from .timefmt import iso_from_ms

PATH: Final = "/a2a/v1"
CARD_PATHS: Final = ("/.well-known/agent-card.json", "/.well-known/agent.json")
MAX_BODY: Final = 1024 * 1024
MAX_BATCH: Final = 30
MAX_TEXT: Final = 64 * 1024
MAX_TASKS: Final = 500
TASK_TTL_MS: Final = 24 * 3_600_000
RATE_WINDOW_MS: Final = 60_000
DEFAULT_RATE: Final = 30
DEFAULT_REPLY_TIMEOUT_MS: Final = 120_000
TRUNCATED: Final = "\n[truncated: message text exceeded 64 KiB]"
UNAUTHORIZED_BODY: Final = {"error": "Unauthorized; configure channels.a2a.peers with a matching Bearer token"}
NOT_FOUND_BODY: Final = {"error": "Not found"}
TOO_LARGE_BODY: Final = {"error": "Request body exceeds the 1 MiB limit"}
SLASH_REJECTED: Final = "A2A peers cannot execute slash commands. Send a task in plain text; only users can issue commands."
_CONTEXT = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PEER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, UNSUPPORTED, SERVER_ERROR = -32001, -32004, -32000
SEND_METHODS: Final = frozenset({"SendMessage", "message/send"})
GET_METHODS: Final = frozenset({"GetTask", "tasks/get"})
CANCEL_METHODS: Final = frozenset({"CancelTask", "tasks/cancel"})

SUBMITTED, WORKING, COMPLETED, FAILED, REJECTED = (
    "TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED",
)
TERMINAL: Final = frozenset({COMPLETED, FAILED, REJECTED})


# --------------------------------------------------------------------------- config and auth


class Peer(Struct, frozen=True, kw_only=True):
    name: str
    token: str
    url: str | None = None
    outbound_token: str | None = None


class A2AConfig(Struct, frozen=True, kw_only=True):
    enabled: bool = False
    peers: tuple[Peer, ...] = ()
    advertised_url: str | None = None
    reply_timeout_ms: int = DEFAULT_REPLY_TIMEOUT_MS
    rate_limit_per_minute: int = DEFAULT_RATE
    expose_agents: tuple[str, ...] = ()


def a2a_config(config: dict[str, Any] | None, tokens: dict[str, str] | None = None) -> A2AConfig:
    """``channels.a2a`` read with its defaults and bounds. ``tokens``: peer tokens the host resolved
    (``${VAR}`` references), by peer name; otherwise the literal config strings are used."""
    sec = ((config or {}).get("channels") or {}).get("a2a")
    if not isinstance(sec, dict):
        return A2AConfig()
    peers = []
    raw = sec.get("peers") if isinstance(sec.get("peers"), dict) else {}
    for name, value in raw.items():
        if not isinstance(value, dict) or not _PEER.match(str(name)):
            continue
        token = (tokens or {}).get(name, value.get("token"))
        if isinstance(token, str) and token:
            peers.append(Peer(name=str(name), token=token, url=value.get("url") if isinstance(value.get("url"), str) else None,
                              outbound_token=value.get("outboundToken") if isinstance(value.get("outboundToken"), str) else None))
    timeout = sec.get("replyTimeoutMs")
    rate = sec.get("rateLimitPerMinute")
    expose = sec.get("exposeAgents")
    return A2AConfig(
        enabled=sec.get("enabled") is not False,
        peers=tuple(peers),
        advertised_url=sec.get("advertisedUrl") if isinstance(sec.get("advertisedUrl"), str) else None,
        reply_timeout_ms=min(600_000, max(5_000, timeout)) if isinstance(timeout, int) else DEFAULT_REPLY_TIMEOUT_MS,
        rate_limit_per_minute=max(0, rate) if isinstance(rate, int) else DEFAULT_RATE,
        expose_agents=tuple(str(a) for a in expose) if isinstance(expose, list) else (),
    )


def authenticate(cfg: A2AConfig, authorization: str | None) -> str | None:
    """The peer whose token the ``Authorization: Bearer`` header carries (constant-time), or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    presented = token.strip().encode()
    found = None
    for peer in cfg.peers:
        if hmac.compare_digest(presented, peer.token.encode()):
            found = peer.name
    return found


class RateLimiter:
    """Sliding 60 s window per peer; ``limit`` 0 disables it."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[int]] = {}

    def allow(self, peer: str, limit: int, now_ms: int) -> bool:
        if limit <= 0:
            return True
        hits = self._hits.setdefault(peer, deque())
        while hits and now_ms - hits[0] >= RATE_WINDOW_MS:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now_ms)
        return True


# --------------------------------------------------------------------------- the agent card


def agent_card(cfg: A2AConfig, roster: R.Roster, version: str, origin: str) -> dict[str, Any]:
    """The public card (``origin``: ``advertisedUrl``, else the origin the request came to)."""
    base = (cfg.advertised_url or origin).rstrip("/")
    exposed = [a for a in roster.agents if not cfg.expose_agents or a.id in cfg.expose_agents]
    return {
        "name": "OpenClaw",
        "description": "OpenClaw agent gateway using the Agent2Agent protocol.",
        "supportedInterfaces": [{"url": f"{base}{PATH}", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "version": version,
        "capabilities": {"streaming": False, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": a.id, "name": a.id, "description": f"OpenClaw agent {a.id}.", "tags": ["openclaw"]} for a in exposed],
    }


# --------------------------------------------------------------------------- tasks


class Task(Struct, kw_only=True):
    id: str
    context_id: str
    peer: str
    state: str
    timestamp_ms: int
    text: str | None = None
    artifact_id: str | None = None
    status_message: dict[str, Any] | None = None
    run_id: str | None = None

    def wire(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self.state, "timestamp": iso_from_ms(self.timestamp_ms)}
        if self.status_message is not None:
            status["message"] = self.status_message
        artifacts = [{"artifactId": self.artifact_id, "parts": [{"text": self.text}]}] if self.text is not None and self.artifact_id else []
        return {"id": self.id, "contextId": self.context_id, "status": status, "artifacts": artifacts, "history": []}


class TaskStore:
    """Tasks in memory: at most :data:`MAX_TASKS`; terminal ones are dropped after 24 h (oldest first
    when full; working tasks are never dropped)."""

    def __init__(self) -> None:
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    def prune(self, now_ms: int) -> None:
        for tid in [t.id for t in self._tasks.values() if t.state in TERMINAL and now_ms - t.timestamp_ms > TASK_TTL_MS]:
            del self._tasks[tid]
        while len(self._tasks) > MAX_TASKS:
            victim = next((t.id for t in self._tasks.values() if t.state in TERMINAL), None)
            if victim is None:
                break
            del self._tasks[victim]

    def add(self, task: Task, now_ms: int) -> Task:
        self._tasks[task.id] = task
        self.prune(now_ms)
        return task

    def get(self, peer: str, task_id: str) -> Task | None:
        """A peer sees only its own tasks (another peer's id is "not found")."""
        task = self._tasks.get(task_id)
        return task if task is not None and task.peer == peer else None

    def by_run(self, run_id: str) -> Task | None:
        return next((t for t in self._tasks.values() if t.run_id == run_id), None)


def extract_text(parts: Any) -> str | None:
    """Text of a message's parts: ``text`` parts, ``data`` parts as compact JSON; file parts ignored;
    capped at 64 KiB with a marker. ``None`` when nothing usable is there."""
    if not isinstance(parts, list):
        return None
    pieces = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif "data" in part and part.get("data") is not None:
            pieces.append(json.dumps(part["data"], separators=(",", ":"), ensure_ascii=False))
    text = "\n".join(p for p in pieces if p.strip())
    if not text.strip():
        return None
    encoded = text.encode()
    if len(encoded) > MAX_TEXT:
        text = encoded[: MAX_TEXT - len(TRUNCATED.encode())].decode("utf-8", "ignore") + TRUNCATED
    return text


def session_key(agent_id: str, peer: str, context_id: str) -> str:
    """One session per peer and context (per-account-channel-peer scope, pinned)."""
    return keys.peer_key(agent_id, channel="a2a", account="default", chat_type="direct", peer=f"{peer}:{context_id}",
                         dm_scope="per-account-channel-peer")


# --------------------------------------------------------------------------- JSON-RPC


def rpc_error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def rpc_result(rid: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


class Parsed(Struct, frozen=True, kw_only=True):
    """A body as calls (``batch``: answer with a list), or ``error`` (answer it alone)."""

    calls: tuple[Any, ...] = ()
    batch: bool = False
    error: dict[str, Any] | None = None


def parse_body(data: bytes) -> Parsed:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Parsed(error=rpc_error(None, PARSE_ERROR, "Parse error"))
    if isinstance(value, list):
        if not value or len(value) > MAX_BATCH:
            return Parsed(error=rpc_error(None, INVALID_REQUEST, "Invalid JSON-RPC request"))
        return Parsed(calls=tuple(value), batch=True)
    return Parsed(calls=(value,))


def _valid_call(call: Any) -> bool:
    return (
        isinstance(call, dict)
        and call.get("jsonrpc") == "2.0"
        and isinstance(call.get("method"), str)
        and ("id" not in call or isinstance(call["id"], str | int) or call["id"] is None)
        and ("params" not in call or isinstance(call["params"], dict | list))
    )


class A2AServer:
    """The gateway's A2A state: tasks and the rate limiter (one per gateway run)."""

    def __init__(self) -> None:
        self.tasks = TaskStore()
        self.limiter = RateLimiter()


def exchange(
    ctx: Ctx, server: A2AServer, cfg: A2AConfig, peer: str, body: bytes, ids: Iterator[str]
) -> Generator[Effect, Any, Any]:
    """Answer one authenticated POST: the JSON value to send (``None``: notifications only, answer
    an empty 200). Runs are started like any other turn and waited for here."""
    parsed = parse_body(body)
    if parsed.error is not None:
        return parsed.error
    allowed = server.limiter.allow(peer, cfg.rate_limit_per_minute, ctx.wall_ms)
    answers = []
    for call in parsed.calls:
        rid = call.get("id") if isinstance(call, dict) else None
        if not _valid_call(call):
            answers.append(rpc_error(rid, INVALID_REQUEST, "Invalid JSON-RPC request"))
            continue
        if not allowed:
            answers.append(rpc_error(rid, SERVER_ERROR, "Peer is rate limited"))
            continue
        answer = yield from _call(ctx, server, cfg, peer, call, ids)
        if "id" in call:
            answers.append(answer)
    if parsed.batch:
        return answers or None
    return answers[0] if answers else None


def _call(ctx: Ctx, server: A2AServer, cfg: A2AConfig, peer: str, call: dict[str, Any], ids: Iterator[str]) -> Generator[Effect, Any, dict[str, Any]]:
    rid = call.get("id")
    method = call["method"]
    params = call.get("params") if isinstance(call.get("params"), dict) else {}
    server.tasks.prune(ctx.wall_ms)
    if method in GET_METHODS:
        tid = params.get("id")
        if not isinstance(tid, str) or not tid:
            return rpc_error(rid, INVALID_PARAMS, "Invalid task params: id is required")
        task = server.tasks.get(peer, tid)
        return rpc_result(rid, task.wire()) if task is not None else rpc_error(rid, TASK_NOT_FOUND, "Task not found")
    if method in CANCEL_METHODS:
        return rpc_error(rid, UNSUPPORTED, "Unsupported operation; supported methods are SendMessage and GetTask")
    if method not in SEND_METHODS:
        return rpc_error(rid, METHOD_NOT_FOUND, f"Method not found: {method}")
    message = params.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        return rpc_error(rid, INVALID_PARAMS, "Invalid SendMessage params: message and parts required")
    context = message.get("contextId")
    if context is not None and (not isinstance(context, str) or not _CONTEXT.match(context)):
        return rpc_error(rid, INVALID_PARAMS, "Invalid SendMessage params: message and parts required")
    text = extract_text(message["parts"])
    if text is None:
        return rpc_error(rid, INVALID_PARAMS, "Message must contain at least one usable text part")
    context_id = context or f"ctx-{next(ids)}"
    task = server.tasks.add(Task(id=next(ids), context_id=context_id, peer=peer, state=WORKING, timestamp_ms=ctx.wall_ms), ctx.wall_ms)
    if text.lstrip().startswith("/"):
        task.state = REJECTED
        task.status_message = {"messageId": next(ids), "contextId": context_id, "role": "ROLE_AGENT", "parts": [{"text": SLASH_REJECTED}]}
        return rpc_result(rid, {"task": task.wire()})
    app = ctx.app
    agent = app.roster.default
    configuration = params.get("configuration") if isinstance(params.get("configuration"), dict) else {}
    run_id = f"a2a-{task.id}"
    task.run_id = run_id
    key = session_key(agent.id, peer, context_id)
    run = app.runs.add(Run(run_id=run_id, session_key=key, agent_id=agent.id, kind="a2a", started_at=ctx.wall_ms), ctx.wall_ms)
    spec = TurnSpec(agent=agent, session_key=key, message=text, surface="agent", channel="a2a",
                    timeout_s=R.run_timeout_s(app.config), sender={"channel": "a2a", "id": peer},
                    route={"channel": "a2a", "to": peer, "accountId": "default"})
    artifact = next(ids)
    run_ctx = Ctx(app, None, ctx.request_id, "a2a.run", ctx.now, ctx.wall_ms)
    app.spawn(Job(run_ctx, _run(run_ctx, run, spec, task, artifact)), f"run {run_id}", key=run_id)
    if configuration.get("returnImmediately") is not True:
        yield WaitRun(run_id, cfg.reply_timeout_ms / 1000)
    return rpc_result(rid, {"task": task.wire()})


def _run(ctx: Ctx, run: Run, spec: TurnSpec, task: Task, artifact: str) -> Generator[Effect, Any, None]:
    yield Sleep(0)
    result = yield from run_turn(ctx, run, spec)
    task.timestamp_ms = ctx.wall_ms
    if result.status == "ok":
        task.state = COMPLETED
        task.text = "" if result.silent else result.text
        task.artifact_id = artifact
    else:
        task.state = FAILED
        task.status_message = {"messageId": artifact, "contextId": task.context_id, "role": "ROLE_AGENT",
                               "parts": [{"text": result.error or "agent run did not complete"}]}


__all__ = [
    "CARD_PATHS",
    "MAX_BODY",
    "NOT_FOUND_BODY",
    "PATH",
    "TOO_LARGE_BODY",
    "UNAUTHORIZED_BODY",
    "A2AConfig",
    "A2AServer",
    "Parsed",
    "Peer",
    "RateLimiter",
    "Task",
    "TaskStore",
    "a2a_config",
    "agent_card",
    "authenticate",
    "exchange",
    "extract_text",
    "parse_body",
    "rpc_error",
    "rpc_result",
    "session_key",
]
