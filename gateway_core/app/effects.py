"""What the application asks of its host: blocking effects (yielded) and immediate outputs (queued).

The application layer is pure. A method handler that needs the outside world *yields* an
:class:`Effect` and receives its result back (``result = yield ReadFile(path)``); the host — the Trio
shell, or the conformance driver's simulator — performs it and resumes the handler with the value,
or throws :class:`EffectFailed` into it. Everything that needs no waiting (answers, broadcasts,
closes, log lines) is an :class:`Output` queued on the application's outbox, which the host drains
after every step. Time comes in with every step (``Ctx.now`` / ``Ctx.wall_ms``), never from a clock.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from ..frames import ErrorShape, StateVersion

# --------------------------------------------------------------------------- blocking effects


class Effect(Struct, frozen=True):
    """Base of everything a handler may yield; the host performs it off the event loop."""


class ReadFile(Effect, frozen=True):
    """The bytes of ``path``, or ``None`` when it does not exist."""

    path: str


class WriteFile(Effect, frozen=True):
    """Replace ``path`` atomically; with ``backup``, keep the old bytes as ``<path>.bak`` first."""

    path: str
    data: bytes
    backup: bool = False
    mode: int = 0o600


class TailLog(Effect, frozen=True):
    """A ``logs.tail`` page of this gateway's file log (dict: file, cursor, size, lines, …)."""

    cursor: int | None
    limit: int
    max_bytes: int
    since_ms: int | None = None


class Sleep(Effect, frozen=True):
    """Resume after ``seconds`` (virtual seconds under the simulator)."""

    seconds: float


class WaitRun(Effect, frozen=True):
    """Resume when run ``run_id`` is done or after ``timeout_s``; the result says which (bool)."""

    run_id: str
    timeout_s: float


class ResolveSecrets(Effect, frozen=True):
    """Resolve the gateway credentials again (config, env, SecretRefs): a ``SharedSecret``."""


class KeepDecisions(Effect, frozen=True):
    """Apply and persist decisions about devices (a pairing approved) before they count; a write
    that fails undoes them and is thrown back as :class:`EffectFailed`."""

    decisions: tuple[Any, ...]


class EffectFailed(Exception):
    """Thrown into a handler when its effect failed. ``kind`` says what broke, for the wire.

    ``message`` is operator-facing and carries no host paths (those go to ``detail``, for the log).
    """

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail


# --------------------------------------------------------------------------- immediate outputs


class Output(Struct, frozen=True):
    """Base of what the application queues for its host."""


class Reply(Output, frozen=True):
    """Answer request ``request_id`` of connection ``conn_id``."""

    conn_id: str
    request_id: str
    ok: bool
    payload: Any = None
    error: ErrorShape | None = None
    final: bool = True


class Publish(Output, frozen=True):
    """A broadcast through every connection's core (scope gating, seq); ``to`` limits the audience."""

    event: str
    payload: Any
    state_version: StateVersion | None = None
    drop_if_slow: bool = False
    to: frozenset[str] | None = None


class CloseConnection(Output, frozen=True):
    """Close one connection with ``code``/``reason`` (e.g. 4001 after a credential rotation)."""

    conn_id: str
    code: int
    reason: str


class LogLine(Output, frozen=True):
    """A record for the gateway's log (``level``: debug, info, warn, error)."""

    level: str
    subsystem: str
    message: str


class RunSettled(Output, frozen=True):
    """Run ``run_id`` finished: wake whoever waits on it (``WaitRun``)."""

    run_id: str


class LaneGranted(Output, frozen=True):
    """Run ``run_id`` may start now (it was waiting on ``AwaitLane``)."""

    run_id: str


class Interrupt(Output, frozen=True):
    """Stop the spawned job ``key`` (a run id) at its current effect: ``reason`` is ``abort``."""

    key: str
    reason: str = "abort"


class Spawn(Output, frozen=True):
    """Run ``job`` as a gateway-level task (it outlives the request that started it, e.g. a run).

    The host starts it with ``job.step(None, …)`` and then carries out its effects like a request's.
    ``key`` (a run id) names it for :class:`Interrupt`.
    """

    job: Any
    name: str = ""
    key: str | None = None


__all__ = [
    "CloseConnection",
    "Effect",
    "EffectFailed",
    "Interrupt",
    "LaneGranted",
    "LogLine",
    "Output",
    "Publish",
    "ReadFile",
    "Reply",
    "ResolveSecrets",
    "RunSettled",
    "Sleep",
    "Spawn",
    "TailLog",
    "WaitRun",
    "WriteFile",
]
