"""Effects of the agent runtime: model streams, the session store, the run lanes.

Like every effect (``gateway_core.app.effects``), these are yielded by pure code and carried out by
the host: the Trio shell calls the provider adapters (with retries and fallbacks) and the SQLite
store in a worker thread; the conformance simulator runs the offline provider and the in-memory
store on its virtual clock.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from ..app.effects import Effect
from ..providers.errors import ProviderError
from ..providers.types import ModelRequest


class ModelOpen(Effect, frozen=True):
    """Start a streamed call: the first candidate, then fallbacks as the retry policy decides.

    The result is a handle for :class:`ModelNext`. ``until`` is the run's deadline (host clock).
    ``run_id`` names the run, so that the host can hold the stream while the route streaming the
    run to its client is behind (back-pressure).
    """

    candidates: tuple[ModelRequest, ...]
    until: float | None = None
    run_id: str | None = None


class ModelNext(Effect, frozen=True):
    """The next stream event as ``(event, "provider/model")``, or ``(None, ref)`` at the end.

    A failed call is thrown into the caller as :class:`ModelFailed`; past ``until``, as
    :class:`RunDeadline`. ``flush_at`` (host clock) is when the run's held live text is due: if no
    event has come by then, the host answers ``Streamed(None, ref, due=True)`` at once and keeps
    the read going (nothing is lost: the event comes with a later ``ModelNext``). A host that
    ignores it only sends the held text later (with the next event).
    """

    handle: int
    until: float | None = None
    flush_at: float | None = None


class ModelClose(Effect, frozen=True):
    """Close the stream early (the host also closes every stream of a finished job)."""

    handle: int


class StoreCall(Effect, frozen=True):
    """Call ``method`` of the session store (``gateway_core.agents.store.SessionStore``)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}


class AwaitLane(Effect, frozen=True):
    """Resume when run ``run_id`` holds its session lane and a global slot (queued, never refused)."""

    run_id: str


class TurnWritten(Effect, frozen=True):
    """The turn is on disk (its commit has returned) and ``result`` is how it ended. A host whose
    caller follows the run (a streaming HTTP route) may let it finish its answer now, before the
    run's final events are built; any other host answers ``None`` at once. A stop thrown here is
    ignored: the turn is written, and the run settles as it ended."""

    run_id: str
    result: Any


class ModelFailed(Exception):
    """The model call failed for good: ``error`` says why, ``message`` is the text for the user."""

    def __init__(self, error: ProviderError, message: str | None = None) -> None:
        super().__init__(message or error.message)
        self.error = error
        self.message = message or error.message


class RunDeadline(Exception):
    """The run's time budget (``agents.defaults.timeoutSeconds``) ran out during an effect."""


class RunAborted(Exception):
    """``chat.abort`` (or a disconnecting HTTP client) stopped the run during an effect."""


class Streamed(Struct, frozen=True):
    """What :class:`ModelNext` returns; ``due``: no event yet, ``flush_at`` passed first.

    ``more``: the events after ``event`` that the host already had in hand (decoded from bytes it
    had received, no waiting), in order; ``ended``: the stream ended after them (the host closed
    it; the next :class:`ModelNext` would answer ``(None, ref)``). A fast upstream's answer often
    arrives whole in one read: taken as one effect, not one effect per event.
    """

    event: Any
    ref: str
    due: bool = False
    more: tuple[Any, ...] = ()
    ended: bool = False


__all__ = ["AwaitLane", "ModelClose", "ModelFailed", "ModelNext", "ModelOpen", "RunAborted", "RunDeadline", "StoreCall", "Streamed", "TurnWritten"]
