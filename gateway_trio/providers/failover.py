"""Retries and model fallback around one streamed call, driven by the pure policy.

``candidates`` is the primary request followed by one request per ``model.fallbacks`` entry.
For each failure *before the first event*, :func:`gateway_core.providers.retry.decide` says:
sleep and retry the same model, move to the next candidate, or give up (the error is raised).
Once events have reached the caller, a failure is raised at once: the caller has shown partial
output and decides itself (the published gateway re-prompts with ``<turn_aborted>`` after an idle
timeout, which changes the request). A credential in cooldown (after a 401/403/402) is not called
at all; its candidate fails with the published cooldown message and the next one is tried.
Cancellation (a Trio cancel scope) stops everything, sleeps between retries included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from gateway_core.providers.errors import ProviderError
from gateway_core.providers.retry import DEFAULT_POLICY, Decision, RetryPolicy, decide
from gateway_core.providers.types import ModelRequest, StreamEvent

from .._runtime import jitter as random_jitter
from .._runtime import now
from .hub import ProviderHub


@dataclass
class Attempt:
    """One failed call and what the policy decided about it."""

    ref: str
    error: ProviderError
    decision: Decision


@dataclass
class FailoverStream:
    """The events of whichever candidate answered; ``request`` is that candidate.

    ``attempts`` lists the failures on the way (for logs and ``run_status``); after a final
    failure, ``attempts[-1].decision.message`` is the text to show the user.
    """

    hub: ProviderHub
    candidates: Sequence[ModelRequest]
    policy: RetryPolicy
    jitter: Callable[[], float]
    on_attempt: Callable[[Attempt], None] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    index: int = 0
    _call: Any = None  # the answering call's async context manager, entered
    _events: AsyncIterator[StreamEvent] | None = None
    _started: bool = False

    @property
    def request(self) -> ModelRequest:
        """The candidate being (or last) called."""
        return self.candidates[min(self.index, len(self.candidates) - 1)]

    def ready(self, limit: int) -> list[StreamEvent]:
        """Up to ``limit`` events of the answering call already decoded (no I/O). None before the
        first event has been taken: until then a failure may still move to another candidate."""
        take = getattr(self._events, "ready", None) if self._started else None
        return take(limit) if take is not None else []

    @property
    def exhausted(self) -> bool:
        """The answering call has ended and every event was taken (the next read ends, no I/O)."""
        return self._started and self._events is not None and bool(getattr(self._events, "exhausted", False))

    @property
    def released(self) -> bool:
        """The answering call's connection is back in the pool (or it held none)."""
        return self._started and self._events is not None and bool(getattr(self._events, "released", False))

    def __aiter__(self) -> FailoverStream:
        return self

    async def __anext__(self) -> StreamEvent:
        retries = 0
        since = now()
        while True:
            try:
                if self._events is None:
                    await self._open()
                assert self._events is not None
                event = await self._events.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                raise
            except ProviderError as err:
                await self.aclose()
                if self._started:
                    raise
                decision = self._decide(err, retries, since)
                if decision.action == "retry":
                    retries += 1
                    await trio.sleep(decision.delay_s)
                    continue
                if decision.action == "failover":
                    self.index += 1
                    retries = 0
                    since = now()
                    continue
                raise
            self._started = True
            return event

    def _decide(self, err: ProviderError, retries: int, since: float) -> Decision:
        req = self.request
        if err.provider is None:
            err.with_model(req.provider, req.model)
        decision = decide(
            err, retries, elapsed_s=now() - since, jitter=self.jitter(),
            has_fallback=self.index + 1 < len(self.candidates), policy=self.policy, ref=req.ref,
        )
        if decision.cooldown_s > 0:
            self.hub.cooldowns.start(req.provider, now(), decision.cooldown_s)
        attempt = Attempt(req.ref, err, decision)
        self.attempts.append(attempt)
        if self.on_attempt is not None:
            self.on_attempt(attempt)
        return decision

    async def _open(self) -> None:
        req = self.request
        resting = self.hub.cooldowns.check(req.provider, now())
        if resting is not None:
            raise resting.with_model(req.provider, req.model)
        call = self.hub.stream(req)
        self._events = await call.__aenter__()  # a failure here leaves nothing open
        self._call = call

    async def aclose(self) -> None:
        """Close the answering call's response (its socket, if it was not read to the end)."""
        call, self._call, self._events = self._call, None, None
        if call is not None:
            await call.__aexit__(None, None, None)


def open_failover(
    hub: ProviderHub,
    candidates: Sequence[ModelRequest],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    jitter: Callable[[], float] = random_jitter,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> FailoverStream:
    """The stream over ``candidates`` (nothing is sent before its first read); its owner awaits
    ``aclose()`` when done (:func:`stream_with_failover` does it as a context manager)."""
    if not candidates:
        raise ValueError("stream_with_failover needs at least one candidate request")
    return FailoverStream(hub, candidates, policy, jitter, on_attempt)


@asynccontextmanager
async def stream_with_failover(
    hub: ProviderHub,
    candidates: Sequence[ModelRequest],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    jitter: Callable[[], float] = random_jitter,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> AsyncIterator[FailoverStream]:
    """``async with stream_with_failover(hub, [primary, *fallbacks]) as events: async for ev in events``."""
    stream = open_failover(hub, candidates, policy=policy, jitter=jitter, on_attempt=on_attempt)
    try:
        yield stream
    finally:
        await stream.aclose()
